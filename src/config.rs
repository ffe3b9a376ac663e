//! Flags (and, later, the site file) into one [`Config`] the library runs on.

use crate::analysis::zones::ZoneMapping;
use crate::cli::{Cli, FailOn, Format};
use crate::policy::{Policy, PolicyError, Settings};
use crate::report::finding::Severity;
use std::path::PathBuf;

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Lint the paths.
    Lint,
    /// Print the scenarios.
    ListScenarios,
    /// Print one finding kind's documentation.
    Explain(String),
}

/// Everything a run needs, from flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Scenarios and modifiers.
    pub settings: Settings,
    /// User zone mappings.
    pub zones: Vec<ZoneMapping>,
    /// Built-in plus user policies.
    pub policy: Policy,
    /// Output format.
    pub format: Format,
    /// Lowest severity that fails the run; `None` never fails on findings.
    pub fail_on: Option<Severity>,
}

/// Flags that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// A `--zone` value that is not NAME=ZONE.
    #[error("bad --zone: {0}")]
    #[diagnostic(code(mislint::usage))]
    Zone(String),
    /// A scenario no policy defines.
    #[error("unknown scenario `{0}`")]
    #[diagnostic(code(mislint::usage), help("known scenarios: {1}"))]
    Scenario(String, String),
    /// A policy file that cannot be read.
    #[error("cannot read policy file `{0}`: {1}")]
    #[diagnostic(code(mislint::usage))]
    PolicyRead(String, std::io::Error),
    /// A policy file that is not valid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Policy(Box<PolicyError>),
    /// `--explain` of something that is not a finding kind.
    #[error("no finding kind is called `{0}`")]
    #[diagnostic(code(mislint::usage), help("known kinds: {1}"))]
    Explain(String, String),
    /// Nothing to lint.
    #[error("no PATH given")]
    #[diagnostic(
        code(mislint::usage),
        help(
            "try `mislint fixtures/iptables/compliant.rules --scenario exchange2000-smtp --zone eth0=public --zone eth1=perimeter --zone eth2=internal`"
        )
    )]
    NoPaths,
}

impl Config {
    /// Checks and combines the flags.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let mut policy = Policy::builtin();
        for path in &cli.policies {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::PolicyRead(shown.clone(), e))?;
            policy.load(&shown, &text).map_err(ConfigError::Policy)?;
        }
        let zones = cli
            .zones
            .iter()
            .map(|z| ZoneMapping::parse(z).map_err(ConfigError::Zone))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = policy.unknown_scenarios(&cli.scenarios).first() {
            let known: Vec<&str> = policy.scenarios.iter().map(|s| s.name.as_str()).collect();
            return Err(ConfigError::Scenario(bad.to_string(), known.join(", ")));
        }
        let mode = if cli.list_scenarios {
            Mode::ListScenarios
        } else if let Some(rule) = cli.explain {
            if crate::checks::meta(&rule).is_none() {
                let known: Vec<&str> = crate::checks::all_metas().map(|m| m.name).collect();
                return Err(ConfigError::Explain(rule, known.join(", ")));
            }
            Mode::Explain(rule)
        } else {
            if cli.paths.is_empty() {
                return Err(ConfigError::NoPaths);
            }
            Mode::Lint
        };
        Ok(Config {
            mode,
            paths: cli.paths,
            settings: Settings {
                scenarios: cli.scenarios,
                ipsec: cli.ipsec,
                static_rpc: cli.static_rpc,
            },
            zones,
            policy,
            format: cli.format,
            fail_on: match cli.fail_on {
                FailOn::Error => Some(Severity::Error),
                FailOn::Warning => Some(Severity::Warning),
                FailOn::Never => None,
            },
        })
    }
}
