//! Command-line flags (clap derive structs only; `config.rs` turns them into a `Config`).

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Lint firewall configs (iptables-save, Cisco ASA, pfSense config.xml) against the port
/// requirements of Microsoft KB 294297 for Mobile Information Server.
#[derive(Debug, Parser)]
#[command(name = "mislint", version, about, max_term_width = 100)]
pub struct Cli {
    /// Config files or directories to lint (formats are recognised by content)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// A KB 294297 scenario whose flows must be permitted (repeatable, or comma-separated);
    /// see --list-scenarios
    #[arg(
        long = "scenario",
        short = 's',
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub scenarios: Vec<String>,

    /// IPSec secures traffic between MIS and the internal network: only ESP, AH and
    /// ISAKMP (plus Kerberos) may cross the internal firewall
    #[arg(long)]
    pub ipsec: bool,

    /// Exchange 5.5 RPC ports are set statically (default 1026): the dynamic RPC range
    /// 1024-65535 is then needless
    #[arg(
        long,
        value_name = "PORT,...",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ',',
        default_missing_value = "1026"
    )]
    pub static_rpc: Option<Vec<u16>>,

    /// Map an interface name (`eth1`, `eth+`) or an address range (`10.0.0.0/24`) to a
    /// zone: public, perimeter or internal (repeatable; wins over names and descriptions)
    #[arg(long = "zone", value_name = "NAME=ZONE")]
    pub zones: Vec<String>,

    /// Add the scenarios and requirements of a policy file (same format as policy/)
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,

    /// Use this site file instead of the nearest `mislint.toml` above each linted file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Ignore site files
    #[arg(long, conflicts_with = "config")]
    pub no_config: bool,

    /// Do not suggest fixes. Each fix is verified by re-checking the whole file with it
    /// applied, which is most of the run on small files; without them a finding's help
    /// still says what to change
    #[arg(long)]
    pub no_fixes: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit with status 1 when a finding at or above this severity is reported
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,

    /// List the scenarios and the flows each requires, then exit
    #[arg(long)]
    pub list_scenarios: bool,

    /// Print the documentation of a finding kind (e.g. needless-port), then exit
    #[arg(long, value_name = "RULE")]
    pub explain: Option<String>,

    /// Ask whether a flow passes, and which line decides, instead of linting:
    /// `PROTO SOURCE -> DEST` with zones, @interfaces, addresses and :ports, e.g.
    /// 'tcp perimeter -> internal :389' or 'tcp 192.168.10.5 -> 10.0.0.10:389'
    /// (grammar: grammars/query.ebnf). Exit status 0 if every part is permitted, 1 if
    /// some part is denied or may be permitted, 2 on errors
    #[arg(long, value_name = "FLOW", conflicts_with_all = ["matrix", "list_scenarios", "explain"])]
    pub query: Option<String>,

    /// Show, instead of findings, what each zone may open towards each other zone and
    /// which lines permit it (NEW connections); `--format dot` draws it for Graphviz
    #[arg(long, conflicts_with_all = ["list_scenarios", "explain"])]
    pub matrix: bool,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable diagnostics with the offending lines underlined
    Human,
    /// Versioned JSON (see docs/json-schema.json)
    Json,
    /// SARIF 2.1.0, for code-scanning services (see docs/output.md)
    Sarif,
    /// GitHub Actions workflow commands, one annotation per line (see docs/output.md)
    Github,
    /// Graphviz DOT drawing of the zone matrix (implies --matrix)
    Dot,
}

/// The severity threshold for a failing exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Fail on errors
    Error,
    /// Fail on warnings and errors
    Warning,
    /// Never fail because of findings
    Never,
}
