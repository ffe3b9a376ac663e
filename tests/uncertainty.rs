//! Honest results under uncertainty: a permit rule carrying a construct mislint does not
//! model must give "may" findings, never a definite verdict. The unknown-module fixtures
//! cover one construct per dialect; these cover a second, different one each, written
//! into the same topology in place of the first: iptables `-m recent`, an ASA `fqdn`
//! network object, a pfSense `urltable` alias.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(root().join("fixtures").join(path)).expect("fixture readable")
}

/// Lints `text` as `name` with the fixture scenario; returns the JSON report.
fn lint(name: &str, text: &str, zones: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("mislint-may-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mislint"))
        .arg(&path)
        .args([
            "--scenario",
            "exchange2000-smtp",
            "--format",
            "json",
            "--no-config",
        ])
        .args(zones)
        .output()
        .expect("mislint runs");
    let _ = std::fs::remove_file(&path);
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The needless-port finding for tcp/445, which the rule with the construct permits.
fn smb_finding(report: &Value) -> &Value {
    report["findings"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["rule"] == "needless-port" && f["ports"].to_string().contains("445"))
        })
        .unwrap_or_else(|| panic!("no needless-port for tcp/445: {report:#}"))
}

fn assert_may_with_note(report: &Value, line: u64) {
    let f = smb_finding(report);
    assert_eq!(f["certainty"], "may", "{f:#}");
    assert_eq!(f["line"], line, "{f:#}");
    let noted = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["rule"] == "unknown-syntax" && n["line"] == line);
    assert!(noted, "no unknown-syntax note on line {line}: {report:#}");
}

/// Replaces exactly one occurrence, so a changed fixture fails loudly here.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` not once in the fixture"
    );
    text.replacen(from, to, 1)
}

#[test]
fn iptables_recent_module_gives_may() {
    let text = replace_once(
        &fixture("iptables/unknown-module.rules"),
        "-m u32 --u32 \"0>>22&0x3C@12>>26&0x3C@0=0x50\"",
        "-m recent --rcheck --seconds 60 --name smb",
    );
    let line = text
        .lines()
        .position(|l| l.contains("-m recent"))
        .expect("rule present") as u64
        + 1;
    let report = lint(
        "recent.rules",
        &text,
        &[
            "--zone",
            "eth0=public",
            "--zone",
            "eth1=perimeter",
            "--zone",
            "eth2=internal",
        ],
    );
    assert_may_with_note(&report, line);
}

#[test]
fn asa_fqdn_object_gives_may() {
    let text = replace_once(
        &fixture("asa/unknown-module.cfg"),
        "access-list dmz_in extended permit tcp object MIS-SERVER object INTERNAL-NET eq 445 time-range BUSINESS-HOURS",
        "access-list dmz_in extended permit tcp object MIS-SERVER object FILESERVER eq 445",
    );
    let text = replace_once(
        &text,
        "object network INTERNAL-NET\n",
        "object network FILESERVER\n fqdn v4 files.example.internal\nobject network INTERNAL-NET\n",
    );
    let line = text
        .lines()
        .position(|l| l.contains("object FILESERVER eq 445"))
        .expect("rule present") as u64
        + 1;
    let report = lint("fqdn.cfg", &text, &[]);
    let f = smb_finding(&report);
    assert_eq!(f["certainty"], "may", "{f:#}");
    assert_eq!(f["line"], line, "{f:#}");
    let noted = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["rule"] == "unknown-syntax" && n["message"].to_string().contains("fqdn"));
    assert!(noted, "no unknown-syntax note naming the fqdn: {report:#}");
}

#[test]
fn pfsense_urltable_alias_gives_may() {
    let text = replace_once(
        &fixture("pfsense/unknown-module.xml"),
        "<address>INTERNAL_SERVERS</address>\n\t\t\t\t<port>445</port>\n\t\t\t</destination>\n\t\t\t<sched>BusinessHours</sched>",
        "<address>FILESERVERS</address>\n\t\t\t\t<port>445</port>\n\t\t\t</destination>",
    );
    let text = replace_once(
        &text,
        "<aliases>\n",
        "<aliases>\n\t\t<alias>\n\t\t\t<name>FILESERVERS</name>\n\t\t\t<type>urltable</type>\n\t\t\t<url>https://files.example.internal/list.txt</url>\n\t\t\t<address></address>\n\t\t</alias>\n",
    );
    let report = lint("config.xml", &text, &[]);
    let f = smb_finding(&report);
    assert_eq!(f["certainty"], "may", "{f:#}");
    let noted = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["rule"] == "unknown-syntax" && n["message"].to_string().contains("FILESERVERS"));
    assert!(noted, "no unknown-syntax note naming the alias: {report:#}");
}
