//! The human form of a query answer: per file, the resolved sides, then each part with
//! its verdict, deciding line, witness and trace as an indented list of config lines.
//! Config text is escaped for the terminal (control and bidi characters).

use super::{Answer, FileAnswer, LineRef, Part, Side, Step};
use crate::report::finding::Witness;
use crate::report::human::sanitize;
use std::io::{self, Write};

/// Writes the answer for people.
pub fn human(answer: &Answer, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "query: {}", sanitize(&answer.query))?;
    for e in &answer.errors {
        writeln!(
            out,
            "\nerror: {}: {}",
            sanitize(&e.file),
            sanitize(&e.message)
        )?;
    }
    for f in &answer.files {
        write_file(f, out)?;
    }
    if answer.files.is_empty() && answer.errors.is_empty() {
        writeln!(out, "\nno firewall config found")?;
    }
    Ok(())
}

fn write_file(f: &FileAnswer, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "\n{} ({})", sanitize(&f.file), f.dialect)?;
    for e in &f.errors {
        writeln!(out, "  error: {}", sanitize(e))?;
    }
    if let (Some(from), Some(to)) = (&f.from, &f.to) {
        writeln!(out, "  from {}", describe_side(from))?;
        writeln!(out, "  to   {}", describe_side(to))?;
    }
    let counts =
        ["permitted", "denied", "may"].map(|v| f.parts.iter().filter(|p| p.verdict == v).count());
    if !f.parts.is_empty() {
        writeln!(
            out,
            "  {} part(s): {} permitted, {} denied, {} may be permitted",
            f.parts.len(),
            counts[0],
            counts[1],
            counts[2]
        )?;
    }
    for (i, p) in f.parts.iter().enumerate() {
        write_part(i + 1, p, out)?;
    }
    Ok(())
}

fn describe_side(s: &Side) -> String {
    let zone = match (s.zone, s.zone_from_address) {
        (Some(z), false) => format!("zone {z}"),
        (Some(z), true) => format!("zone {z} (by address)"),
        (None, _) => "no zone".to_string(),
    };
    let ifaces = if s.interfaces.is_empty() {
        "any interface".to_string()
    } else {
        format!("interfaces {}", list(&s.interfaces))
    };
    format!("{zone}: {ifaces}, addresses {}", list(&s.addresses))
}

fn list(items: &[String]) -> String {
    const MAX: usize = 6;
    let shown: Vec<String> = items.iter().take(MAX).map(|s| sanitize(s)).collect();
    let more = items.len().saturating_sub(MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn write_part(n: usize, p: &Part, out: &mut dyn Write) -> io::Result<()> {
    let verdict = match p.verdict {
        "permitted" => "PERMITTED",
        "denied" => "DENIED",
        _ => "MAY PASS",
    };
    writeln!(
        out,
        "\n  {n}. {verdict:<9} {}  from {} ({}) to {} ({})",
        sanitize(&p.service),
        list(&p.src),
        list(&p.in_interfaces),
        list(&p.dst),
        list(&p.out_interfaces),
    )?;
    if !p.src_ports.is_empty() && p.src_ports != [(0, 65535)] {
        writeln!(out, "     source ports {}", ranges(&p.src_ports))?;
    }
    writeln!(
        out,
        "     decided by {}   [{}]",
        at_line(&p.decided_by),
        sanitize(&p.decided_by.what)
    )?;
    if let Some(c) = &p.decided_by.comment {
        writeln!(out, "     (its comment: {})", sanitize(c))?;
    }
    if let Some(u) = &p.unmodelled {
        writeln!(
            out,
            "     depends on {}   [not modelled by mislint]",
            at_line(u)
        )?;
    }
    if let Some(nat) = &p.nat {
        writeln!(out, "     destination NAT at {}", at_line(nat))?;
    }
    writeln!(out, "     witness: {}", packet(&p.witness))?;
    if let Some(d) = &p.delivered {
        writeln!(out, "     delivered as: {}", packet(d))?;
    }
    writeln!(out, "     trace:")?;
    write_trace(&p.trace, out)?;
    if let Some(alt) = &p.alternative {
        writeln!(
            out,
            "     otherwise (if the unmodelled construct does not let it through): {} by {}",
            alt.verdict,
            at_line(&alt.decided_by)
        )?;
        write_trace(&alt.trace, out)?;
    }
    Ok(())
}

/// `line 18: <text>`, or the description alone for a default no line causes.
fn at_line(r: &LineRef) -> String {
    match r.line {
        Some(n) => format!("line {n}: {}", sanitize(&r.text)),
        None => sanitize(&r.what),
    }
}

fn ranges(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn packet(w: &Witness) -> String {
    let proto = crate::checks::proto_name(w.protocol);
    let port = |p: Option<u16>| p.map_or_else(String::new, |p| format!(":{p}"));
    let mut s = format!(
        "{proto} {}{} -> {}{}",
        w.src,
        port(w.src_port),
        w.dst,
        port(w.dst_port)
    );
    if let Some(i) = &w.in_interface {
        s.push_str(&format!(", in {}", sanitize(i)));
    }
    if let Some(o) = &w.out_interface {
        s.push_str(&format!(", out {}", sanitize(o)));
    }
    s
}

fn write_trace(steps: &[Step], out: &mut dyn Write) -> io::Result<()> {
    for s in steps {
        let indent = "  ".repeat(s.depth + 4);
        match s.event {
            "enter-stage" => writeln!(out, "       {}", sanitize(&s.stage))?,
            _ => {
                let at = s
                    .line
                    .map_or_else(|| "     ".to_string(), |l| format!("{l:>5}"));
                let assumed = if s.assumed {
                    " (unmodelled condition assumed to match)"
                } else {
                    ""
                };
                let detail = format!("{}{assumed}", sanitize(&s.detail));
                match &s.text {
                    Some(t) => writeln!(out, "{indent}{at}  {detail:<34} {}", sanitize(t))?,
                    None => writeln!(out, "{indent}{at}  {detail}")?,
                }
            }
        }
    }
    Ok(())
}
