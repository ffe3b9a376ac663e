//! Bad input, end to end: huge, malformed, cyclic and hostile files run through the real
//! binary under a time limit and a 1 GiB address-space limit (`ulimit -v`), next to a
//! good file, to show each gives a clear error or note, in bounded time and memory, and
//! that the run goes on with the other files.
//!
//! Run as root, as CI does: root reads any file whatever its mode, so "unreadable" is
//! tested with what stops root too: a dangling symlink, a path through a regular file
//! (ENOTDIR), a symlink loop (ELOOP), a FIFO with no writer and an endless device.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ZONES: [&str; 6] = [
    "--zone",
    "eth0=public",
    "--zone",
    "eth1=perimeter",
    "--zone",
    "eth2=internal",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A good file to lint beside the bad one.
fn good() -> String {
    root()
        .join("fixtures/iptables/compliant.rules")
        .display()
        .to_string()
}

/// A scratch directory unique to this test process and name.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mislint-adv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// What a bounded run gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs mislint with `args` (JSON output, all scenarios' zones) under `ulimit -v 1 GiB`,
/// killing it and failing after `secs`. Output goes to files, so a large report cannot
/// fill a pipe and stall the child.
fn run_bounded(dir: &Path, args: &[&str], secs: u64) -> Run {
    let out = dir.join("stdout");
    let err = dir.join("stderr");
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_mislint"))
        .args(args)
        .args(["--format", "json", "--no-config", "-s", "exchange2000-smtp"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("sh runs");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mislint {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        took: started.elapsed(),
    }
}

/// Findings of one rule kind in a JSON report.
fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["rule"] == rule).collect())
        .unwrap_or_default()
}

/// The paths the JSON report says were linted.
fn linted(report: &Value) -> Vec<String> {
    report["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The good fixture was linted too and gave no error.
fn assert_good_file_linted(report: &Value) {
    let good = good();
    assert!(linted(report).contains(&good), "{report:#}");
    let errors = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["file"] == good.as_str() && f["severity"] == "error")
        .count();
    assert_eq!(errors, 0, "{report:#}");
}

/// The error entry (unlintable path) for `path`.
fn error_for<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["errors"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["file"] == path))
        .unwrap_or_else(|| panic!("no error for {path}: {report:#}"))
}

fn lint_one(name: &str, file: &str, text: &[u8], secs: u64) -> (Run, Value) {
    let dir = scratch(name);
    std::fs::write(dir.join(file), text).expect("write");
    let good = good();
    let mut args = vec![file, good.as_str()];
    args.extend(ZONES);
    let run = run_bounded(&dir, &args, secs);
    let report = run.json();
    let _ = std::fs::remove_dir_all(&dir);
    (run, report)
}

// --- size ---------------------------------------------------------------------------

/// One million lines: 100,000 rules, each followed by nine comment lines (a dump with
/// per-rule comments). Parsing and analysis stay linear here; a million *distinct rules*
/// is measured in docs/fuzzing.md, not in the test suite, as it takes minutes in debug.
#[test]
fn million_line_file() {
    let mut text = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n");
    let mut lines = 3;
    let mut i = 0u32;
    while lines < 999_999 {
        let _ = writeln!(
            text,
            "-A FORWARD -s 10.{}.{}.0/24 -i eth1 -o eth2 -p tcp -m tcp --dport 80 -j ACCEPT",
            (i >> 8) & 255,
            i & 255
        );
        lines += 1;
        for _ in 0..9 {
            if lines < 999_999 {
                text.push_str("# generated by a tool that comments every rule\n");
                lines += 1;
            }
        }
        i += 1;
    }
    text.push_str("COMMIT\n");
    assert_eq!(text.lines().count(), 1_000_000);
    let (run, report) = lint_one("million", "big.rules", text.as_bytes(), 300);
    assert!(
        findings(&report, "parse-error").is_empty(),
        "{}",
        run.stderr
    );
    assert!(linted(&report).contains(&"big.rules".to_string()));
    assert_good_file_linted(&report);
    println!("1,000,000 lines: {:?}", run.took);
}

/// A single line of 10 MB: a comment that long is refused as iptables does (255
/// characters at most); junk of that size is one parse error; neither is copied into
/// the JSON output whole.
#[test]
fn ten_megabyte_line() {
    let huge = "x".repeat(10 << 20);
    let text = format!(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m comment --comment \"{huge}\" -j ACCEPT\nCOMMIT\n"
    );
    let (run, report) = lint_one("10mb-comment", "long.rules", text.as_bytes(), 120);
    let errors = findings(&report, "parse-error");
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert_eq!(
        errors[0]["message"],
        "comment is longer than 255 characters"
    );
    assert!(
        run.stdout.len() < 1 << 20,
        "{} bytes of output",
        run.stdout.len()
    );
    assert_good_file_linted(&report);

    let text = format!("*filter\n:FORWARD DROP [0:0]\n-A FORWARD {huge}\nCOMMIT\n");
    let (run, report) = lint_one("10mb-junk", "junk.rules", text.as_bytes(), 120);
    let errors = findings(&report, "parse-error");
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert_eq!(errors[0]["line"], 3);
    assert!(
        run.stdout.len() < 1 << 20,
        "{} bytes of output",
        run.stdout.len()
    );
    assert_good_file_linted(&report);
}

// --- encodings and bytes -------------------------------------------------------------

#[test]
fn invalid_utf8_reports_the_byte_offset() {
    let (run, report) = lint_one(
        "utf8",
        "bad.rules",
        b"*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j ACCEPT \xff\xfe\nCOMMIT\n",
        30,
    );
    assert_eq!(run.code, Some(2));
    let e = error_for(&report, "bad.rules");
    assert_eq!(e["offset"], 49);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("offset 49")),
        "{e}"
    );
    assert_good_file_linted(&report);
}

/// A UTF-8 byte order mark (Windows editors add one) changes nothing, in every dialect.
#[test]
fn byte_order_mark_is_ignored() {
    for fixture in [
        "iptables/compliant.rules",
        "asa/compliant.cfg",
        "pfsense/compliant.xml",
    ] {
        let mut text = b"\xef\xbb\xbf".to_vec();
        text.extend(std::fs::read(root().join("fixtures").join(fixture)).expect("fixture"));
        let (run, report) = lint_one("bom", "bom.conf", &text, 60);
        assert_eq!(run.code, Some(0), "{fixture}: {}", run.stdout);
        assert!(findings(&report, "parse-error").is_empty(), "{fixture}");
        assert_eq!(linted(&report).len(), 2, "{fixture}");
    }
}

/// CRLF and mixed line ends give the same findings as LF, in every dialect.
#[test]
fn crlf_and_mixed_line_ends_change_nothing() {
    for fixture in [
        "iptables/shadowed-ldap.rules",
        "asa/shadowed-ldap.cfg",
        "pfsense/shadowed-ldap.xml",
    ] {
        let lf = std::fs::read_to_string(root().join("fixtures").join(fixture)).expect("fixture");
        let crlf = lf.replace('\n', "\r\n");
        let mixed: String = lf
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, l)| {
                if i % 2 == 0 {
                    l.replace('\n', "\r\n")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let summary = |text: &str| {
            let (_, report) = lint_one("crlf", "fw.conf", text.as_bytes(), 60);
            let mut out: Vec<(String, u64, u64)> = report["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["file"] == "fw.conf")
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap_or("").to_string(),
                        f["line"].as_u64().unwrap_or(0),
                        f["column"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            out.sort();
            out
        };
        let want = summary(&lf);
        assert!(!want.is_empty(), "{fixture} gives findings");
        assert_eq!(summary(&crlf), want, "{fixture} with CRLF");
        assert_eq!(summary(&mixed), want, "{fixture} with mixed line ends");
    }
}

/// A NUL byte in a rule is a parse error at that line and column.
#[test]
fn nul_byte_is_a_parse_error_at_its_line() {
    let (run, report) = lint_one(
        "nul",
        "nul.rules",
        b"*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp\0 --dport 80 -j ACCEPT\nCOMMIT\n",
        30,
    );
    assert_eq!(run.code, Some(2));
    let errors = findings(&report, "parse-error");
    assert_eq!(errors.len(), 1, "{report:#}");
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(3), Some(15))
    );
    assert_good_file_linted(&report);
}

/// An empty file named explicitly is no config: an error entry, exit 2.
#[test]
fn empty_file_is_reported() {
    let (run, report) = lint_one("empty", "empty.rules", b"", 30);
    assert_eq!(run.code, Some(2));
    let e = error_for(&report, "empty.rules");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not an iptables-save dump"))
    );
    assert_good_file_linted(&report);
}

// --- paths ---------------------------------------------------------------------------

/// A directory is linted as a directory whatever its name (`fw.rules/`); a regular file
/// named with a trailing slash (`x.rules/`) is ENOTDIR, an error entry.
#[test]
fn directory_named_like_a_file_and_file_with_trailing_slash() {
    let dir = scratch("dirs");
    std::fs::create_dir_all(dir.join("fw.rules")).expect("mkdir");
    std::fs::copy(good(), dir.join("fw.rules/compliant.rules")).expect("copy");
    std::fs::copy(good(), dir.join("plain.rules")).expect("copy");
    let mut args = vec!["fw.rules", "plain.rules/"];
    args.extend(ZONES);
    let run = run_bounded(&dir, &args, 30);
    let report = run.json();
    assert!(
        linted(&report).contains(&"fw.rules/compliant.rules".to_string()),
        "{report:#}"
    );
    let e = error_for(&report, "plain.rules/");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot read")),
        "{e}"
    );
    assert_eq!(run.code, Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unreadable for root too: a dangling symlink (ENOENT), a symlink loop (ELOOP), a FIFO
/// nobody writes to, and an endless device. Each is an error entry; the good file is
/// still linted, and the run ends in bounded time and memory.
#[test]
fn unreadable_paths_are_errors_and_the_run_goes_on() {
    let dir = scratch("unreadable");
    std::os::unix::fs::symlink("nowhere.rules", dir.join("dangling.rules")).expect("symlink");
    std::os::unix::fs::symlink("loop.rules", dir.join("loop.rules")).expect("symlink");
    let fifo = dir.join("fifo.rules");
    let has_fifo = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let good = good();
    let mut args = vec!["dangling.rules", "loop.rules", "/dev/zero", good.as_str()];
    if has_fifo {
        args.push("fifo.rules");
    }
    args.extend(ZONES);
    let run = run_bounded(&dir, &args, 60);
    let report = run.json();
    assert_eq!(run.code, Some(2));
    for path in ["dangling.rules", "loop.rules", "/dev/zero"] {
        let e = error_for(&report, path);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    if has_fifo {
        let e = error_for(&report, "fifo.rules");
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("no writer")),
            "{e}"
        );
    }
    assert_good_file_linted(&report);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A symlink loop inside a linted directory: walkdir does not follow symlinks, so the
/// loop is passed over and the config beside it is linted.
#[test]
fn symlink_loop_inside_a_directory() {
    let dir = scratch("symloop");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("..", tree.join("sub/up")).expect("symlink");
    std::os::unix::fs::symlink("b", tree.join("a")).expect("symlink");
    std::os::unix::fs::symlink("a", tree.join("b")).expect("symlink");
    std::fs::copy(good(), tree.join("sub/fw.rules")).expect("copy");
    let mut args = vec!["tree"];
    args.extend(ZONES);
    let run = run_bounded(&dir, &args, 30);
    let report = run.json();
    assert_eq!(linted(&report), vec!["tree/sub/fw.rules".to_string()]);
    assert_eq!(run.code, Some(0), "{report:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

// --- references ----------------------------------------------------------------------

#[test]
fn iptables_jump_loop_is_a_cycle_finding() {
    let text = "*filter\n:FORWARD DROP [0:0]\n:a - [0:0]\n:b - [0:0]\n-A FORWARD -j a\n\
                -A a -j b\n-A b -j a\nCOMMIT\n";
    let (_, report) = lint_one("ipt-loop", "loop.rules", text.as_bytes(), 30);
    assert!(
        !findings(&report, "reference-cycle").is_empty(),
        "{report:#}"
    );
    assert_good_file_linted(&report);
}

#[test]
fn iptables_ten_thousand_deep_user_chains() {
    let depth = 10_000;
    let mut text = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..depth {
        let _ = writeln!(text, ":c{i} - [0:0]");
    }
    text.push_str("-A FORWARD -j c0\n");
    for i in 0..depth - 1 {
        let _ = writeln!(text, "-A c{i} -j c{}", i + 1);
    }
    let _ = writeln!(
        text,
        "-A c{} -i eth1 -o eth0 -p tcp --dport 25 -j ACCEPT\nCOMMIT",
        depth - 1
    );
    let (run, report) = lint_one("ipt-deep", "deep.rules", text.as_bytes(), 120);
    assert!(
        findings(&report, "parse-error").is_empty(),
        "{}",
        run.stderr
    );
    // The deepest chain's ACCEPT is what lets SMTP out: found through 10,000 calls.
    assert!(
        findings(&report, "missing-port").is_empty()
            || !findings(&report, "missing-port")
                .iter()
                .any(|f| f["requirement"] == "smtp-carrier"),
        "{report:#}"
    );
    assert_good_file_linted(&report);
}

const ASA_HEAD: &str = "ASA Version 9.12(4)\nhostname fw\n\
    interface GigabitEthernet1/1\n nameif outside\n security-level 0\n ip address 203.0.113.1 255.255.255.0\n\
    interface GigabitEthernet1/2\n nameif dmz\n security-level 50\n ip address 192.168.10.1 255.255.255.0\n\
    interface GigabitEthernet1/3\n nameif inside\n security-level 100\n ip address 10.0.0.1 255.0.0.0\n";

#[test]
fn asa_object_group_cycle_is_a_cycle_finding() {
    let text = format!(
        "{ASA_HEAD}object-group network A\n group-object B\nobject-group network B\n group-object A\n\
         access-list dmz_in extended permit tcp any object-group A eq 389\n\
         access-group dmz_in in interface dmz\n"
    );
    let (_, report) = lint_one("asa-cycle", "cycle.cfg", text.as_bytes(), 30);
    assert!(
        !findings(&report, "reference-cycle").is_empty(),
        "{report:#}"
    );
    assert_good_file_linted(&report);
}

#[test]
fn asa_ten_thousand_deep_object_groups() {
    let depth = 10_000;
    let mut text = String::from(ASA_HEAD);
    for i in 0..depth - 1 {
        let _ = writeln!(text, "object-group network G{i}\n group-object G{}", i + 1);
    }
    let _ = writeln!(
        text,
        "object-group network G{}\n network-object 10.0.0.0 255.0.0.0",
        depth - 1
    );
    text.push_str("access-list dmz_in extended permit tcp any object-group G0 eq ldap\n");
    text.push_str("access-group dmz_in in interface dmz\n");
    let (run, report) = lint_one("asa-deep", "deep.cfg", text.as_bytes(), 120);
    assert!(
        findings(&report, "parse-error").is_empty(),
        "{}",
        run.stderr
    );
    assert!(findings(&report, "reference-cycle").is_empty());
    assert_good_file_linted(&report);
}

fn pfsense_with_aliases(aliases: &str, dst: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<pfsense>\n<interfaces>\n\
         <wan><if>em0</if><ipaddr>203.0.113.1</ipaddr><subnet>24</subnet></wan>\n\
         <lan><if>em1</if><ipaddr>10.0.0.1</ipaddr><subnet>8</subnet></lan>\n\
         <opt1><if>em2</if><descr>DMZ</descr><ipaddr>192.168.10.1</ipaddr><subnet>24</subnet></opt1>\n\
         </interfaces>\n<aliases>\n{aliases}</aliases>\n<filter>\n\
         <rule><type>pass</type><interface>opt1</interface><protocol>tcp</protocol>\
         <source><any/></source><destination><address>{dst}</address><port>389</port></destination></rule>\n\
         </filter>\n</pfsense>\n"
    )
}

#[test]
fn pfsense_alias_cycle_is_a_cycle_finding() {
    let aliases = "<alias><name>A</name><type>network</type><address>B</address></alias>\n\
                   <alias><name>B</name><type>network</type><address>A</address></alias>\n";
    let text = pfsense_with_aliases(aliases, "A");
    let (_, report) = lint_one("pf-cycle", "config.xml", text.as_bytes(), 30);
    assert!(
        !findings(&report, "reference-cycle").is_empty(),
        "{report:#}"
    );
    assert_good_file_linted(&report);
}

#[test]
fn pfsense_ten_thousand_deep_aliases() {
    let depth = 10_000;
    let mut aliases = String::new();
    for i in 0..depth - 1 {
        let _ = writeln!(
            aliases,
            "<alias><name>a{i}</name><type>network</type><address>a{}</address></alias>",
            i + 1
        );
    }
    let _ = writeln!(
        aliases,
        "<alias><name>a{}</name><type>network</type><address>10.0.0.0/8</address></alias>",
        depth - 1
    );
    let text = pfsense_with_aliases(&aliases, "a0");
    let (run, report) = lint_one("pf-deep", "config.xml", text.as_bytes(), 120);
    assert!(
        findings(&report, "parse-error").is_empty(),
        "{}",
        run.stderr
    );
    assert!(findings(&report, "reference-cycle").is_empty());
    assert_good_file_linted(&report);
}

/// The billion-laughs bomb: roxmltree refuses DTDs, so it is one parse error, quickly
/// and in little memory.
#[test]
fn pfsense_entity_expansion_bomb_is_refused() {
    let mut text =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY l0 \"lol\">\n");
    for i in 1..10 {
        let refs = format!("&l{};", i - 1).repeat(10);
        let _ = writeln!(text, " <!ENTITY l{i} \"{refs}\">");
    }
    text.push_str("]>\n<pfsense><system><hostname>&l9;</hostname></system></pfsense>\n");
    let (run, report) = lint_one("pf-bomb", "bomb.xml", text.as_bytes(), 30);
    assert_eq!(run.code, Some(2));
    let errors = findings(&report, "parse-error");
    assert_eq!(errors.len(), 1, "{report:#}");
    assert_good_file_linted(&report);
}

/// A 10 KB mutation of the istio corpus dump, found by the pipeline fuzz target: unknown
/// targets over several stages made the walk fork without bound (minutes, gigabytes).
/// Now identical pieces are merged between stages and a step budget bounds the rest.
#[test]
fn fuzzed_blowup_finishes_with_bounded_memory() {
    let bytes = std::fs::read(root().join("tests/regressions/pipeline-blowup.rules"))
        .expect("the regression input is in the repo");
    let (run, report) = lint_one("blowup", "blowup.rules", &bytes, 60);
    assert!(run.took < Duration::from_secs(60));
    assert!(linted(&report).contains(&"blowup.rules".to_string()));
    assert_good_file_linted(&report);
    // Whatever the analysis could not finish is "may", and it says so.
    for f in findings(&report, "analysis-limit") {
        assert_eq!(f["certainty"], "may");
    }
}
