//! Typical mistakes per dialect, rendered as a user sees them: the human error names
//! file:line:column, underlines exactly the offending token, and says what was expected.

use mislint::graph::Dialect;
use mislint::report::{Report, Sources};
use mislint::source::{FileId, SourceFile};

/// Human output (no colour, 100 columns) of the parse findings of one file.
fn render(name: &str, text: &str, dialect: Dialect) -> String {
    let file = SourceFile::new(FileId(0), name, text);
    let parsed = mislint::parse::parse(&file, dialect);
    let report = Report {
        findings: parsed.findings,
        problems: Vec::new(),
    };
    let sources = Sources::new(vec![(file, Some(dialect))]);
    let mut out = Vec::new();
    mislint::report::human::render_with(&report, &sources, &mut out, false, 100)
        .expect("writes to memory");
    String::from_utf8(out).expect("output is UTF-8")
}

/// Asserts the output points at `name:line:col`, underlines `width` characters starting
/// at that column under the source line, and contains `says`.
fn assert_points(out: &str, name: &str, line: usize, col: usize, width: usize, says: &str) {
    let header = format!("[{name}:{line}:{col}]");
    assert!(out.contains(&header), "no {header} in\n{out}");
    assert!(out.contains(says), "no `{says}` in\n{out}");
    // The underline row follows the source line: `    · ` then spaces up to the column.
    let gutter = format!("{line} │ ");
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&gutter))
        .unwrap_or_else(|| panic!("source line {line} not shown in\n{out}"));
    // In characters: the gutter's `│` is one column but three bytes.
    let src_col = lines[at].find(&gutter).map_or(0, |i| {
        lines[at][..i].chars().count() + gutter.chars().count()
    });
    let under = lines.get(at + 1).copied().unwrap_or("");
    let marks: String = under.chars().skip(src_col + col - 1).take(width).collect();
    assert!(
        marks.chars().all(|c| "─┬┼".contains(c)) && marks.chars().count() == width,
        "underline {marks:?} is not {width} wide at column {col} in\n{out}"
    );
}

const IPT_HEAD: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n";

#[test]
fn iptables_option_typo() {
    let text = format!("{IPT_HEAD}-A FORWARD -p tcp --dpor 80 -j ACCEPT\nCOMMIT\n");
    let out = render("fw.rules", &text, Dialect::Iptables);
    assert_points(
        &out,
        "fw.rules",
        4,
        19,
        6,
        "unknown option `--dpor`: expected an option",
    );
}

#[test]
fn iptables_missing_commit() {
    let text = format!("{IPT_HEAD}-A FORWARD -p tcp --dport 80 -j ACCEPT\n");
    let out = render("fw.rules", &text, Dialect::Iptables);
    assert_points(&out, "fw.rules", 1, 1, 7, "table `filter` has no `COMMIT`");
}

const ASA_HEAD: &str = "ASA Version 9.12(4)\nhostname fw\ninterface GigabitEthernet1/2\n nameif dmz\n security-level 50\n";

#[test]
fn asa_keyword_typo_in_access_list() {
    let text = format!(
        "{ASA_HEAD}access-list dmz_in extended permitt tcp any any eq www\naccess-group dmz_in in interface dmz\n"
    );
    let out = render("fw.cfg", &text, Dialect::Asa);
    assert_points(&out, "fw.cfg", 6, 29, 7, "expected permit or deny");
}

#[test]
fn asa_port_operator_typo() {
    let text = format!(
        "{ASA_HEAD}access-list dmz_in extended permit tcp any any eqq www\naccess-group dmz_in in interface dmz\n"
    );
    let out = render("fw.cfg", &text, Dialect::Asa);
    assert_points(&out, "fw.cfg", 6, 48, 3, "expected a port operator");
}

#[test]
fn asa_unknown_object_group() {
    let text = format!(
        "{ASA_HEAD}access-list dmz_in extended permit tcp any object-group NOPE eq www\naccess-group dmz_in in interface dmz\n"
    );
    let out = render("fw.cfg", &text, Dialect::Asa);
    assert_points(
        &out,
        "fw.cfg",
        6,
        44,
        17,
        "object-group `NOPE` is not defined",
    );
}

#[test]
fn pfsense_unclosed_tag() {
    let text = "<?xml version=\"1.0\"?>\n<pfsense>\n  <interfaces>\n    <lan><if>em1</if>\n  </interfaces>\n</pfsense>\n";
    let out = render("config.xml", text, Dialect::Pfsense);
    assert_points(
        &out,
        "config.xml",
        5,
        3,
        1,
        "expected 'lan' tag, not 'interfaces'",
    );
}
