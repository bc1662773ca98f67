//! The command line (SPEC §5). The `--format json` outputs are contracts
//! other tools read: change them only by adding fields.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::bookings::codes::CodeKey;
use crate::bookings::{
    CancelCode, Clock, ClockKind, DateError, DayStatus, Reach, RuleContext, ServiceCalendar,
    UserCode,
};
use crate::runtime::{self, ShiftedClock, SystemClock};
use crate::store::{ClosingOutcome, ReissueWhich, Store};

#[derive(Parser, Debug)]
#[command(
    name = "mensa",
    version,
    about = "School canteen bookings: phone line, bookings core and API"
)]
pub struct Cli {
    /// Database: sqlite://FILE (created on first use) or postgres://...
    #[arg(long, global = true, env = "MENSA_DATABASE_URL")]
    database_url: Option<String>,

    /// The key cancel codes are hashed with: a file of 64 hexadecimal
    /// digits (`mensa codes new-key FILE`). Or the digits themselves in
    /// MENSA_CODE_KEY. Needed by serve, import, phone-target, codes and
    /// load --store-check on a real database (docs/deployment.md).
    #[arg(long, global = true, env = "MENSA_CODE_KEY_FILE", value_name = "FILE")]
    code_key_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// `writeln!` into the command's output buffer (a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

mod codes;
use codes::{codes_status, configured_key, keyed, new_key, reissue};

const DEFAULT_DATABASE_URL: &str = "sqlite://mensa.db";

#[derive(Subcommand, Debug)]
enum Command {
    /// Dialplans (dialplans/*.toml).
    Dialplan {
        #[command(subcommand)]
        command: DialplanCommand,
    },
    /// Import (or re-import) ente, schools, calendars, families and news.
    Import {
        /// The TOML file (shape: tests/data/import-example.toml).
        file: PathBuf,
    },
    /// A child's calendar for a month: each day's status and who changed it.
    Calendar {
        #[arg(long)]
        user_code: String,
        /// YYYY-MM
        #[arg(long)]
        month: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// What a phone call at a local time would do for a cancel code.
    PhoneTarget {
        #[arg(long)]
        cancel_code: String,
        /// Local time of the ente: "YYYY-MM-DD HH:MM".
        #[arg(long)]
        at: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Close a day now (R10): freeze it and charge the meals. Idempotent.
    CloseDay {
        /// YYYY-MM-DD, in the school calendar's reach.
        #[arg(long)]
        date: String,
    },
    /// The kitchen report of a day: per school and class.
    Kitchen {
        /// YYYY-MM-DD, in the school calendar's reach.
        #[arg(long)]
        date: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The phone calls of a day (R12): caller, number, times, codes tried
    /// (redacted), operations and their results.
    Calls {
        /// YYYY-MM-DD, in the school calendar's reach.
        #[arg(long)]
        date: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// A child's credit: balance and entries.
    Ledger {
        #[arg(long)]
        user_code: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the service: the phone line (SIP + RTP), the store and the
    /// daily closing (docs/deployment.md).
    Serve {
        /// Start the clock at this local time ("YYYY-MM-DD HH:MM") and run on.
        /// Refused on a database with days closed under the real clock,
        /// unless --now-on-real-data.
        #[arg(long)]
        now: Option<String>,
        /// Run --now even on a database with days closed under the real
        /// clock: the clock set by hand will close and charge every day up
        /// to its date, irreversibly.
        #[arg(long, requires = "now")]
        now_on_real_data: bool,
        /// Import the built-in demo data into a fresh database first.
        #[arg(long)]
        demo: bool,
        /// The config file (TOML: [sip], [media], [shutdown]); without it
        /// only loopback may call.
        #[arg(long)]
        config: Option<PathBuf>,
        /// SIP listen address, UDP and TCP [default: 0.0.0.0:5060].
        #[arg(long, value_name = "ADDR")]
        sip_listen: Option<std::net::SocketAddr>,
        /// Address in Contact and SDP [default: the listen address, or the
        /// default route's interface when listening on 0.0.0.0].
        #[arg(long, value_name = "ADDR")]
        sip_advertise: Option<std::net::SocketAddr>,
        /// RTP port range, even LOW [default: 20000-29999].
        #[arg(long, value_name = "LOW-HIGH")]
        rtp_ports: Option<String>,
        /// Address of the JSON API.
        #[arg(long, env = "MENSA_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
        http_listen: std::net::SocketAddr,
        /// The operators' bearer token (without it, operator routes answer 401).
        #[arg(long, env = "MENSA_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: Option<String>,
    },
    /// Cancel codes: the key they are hashed with, how guessable they
    /// are, new codes for short ones (docs/cli.md).
    Codes {
        #[command(subcommand)]
        command: CodesCommand,
    },
    /// Write a pcap of a key sequence for sipp's play_pcap_audio
    /// (docs/testing-calls.md).
    DtmfPcap(DtmfPcapArgs),
    /// Place calls at a SIP target the way callers do, and report
    /// (docs/load.md).
    Load(Box<LoadArgs>),
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// The SIP target (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: std::net::SocketAddr,
    /// The local address to send from (SIP and RTP sockets).
    #[arg(long, default_value = "127.0.0.1")]
    local: std::net::IpAddr,
    /// New calls per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// At most this many calls up at once.
    #[arg(long, default_value_t = 100)]
    concurrent: usize,
    /// Place this many calls [default: 10 unless --duration].
    #[arg(long, conflicts_with = "duration")]
    calls: Option<u64>,
    /// Or start calls for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// What a caller does once answered: `ivr`, `short`, or steps
    /// (speech, quiet:MS, wait:MS, keys:KEYS with {code}, bye, await-bye).
    #[arg(long, default_value = "ivr")]
    script: String,
    /// Short calls: answer, hold this many seconds, BYE (overrides --script).
    #[arg(long)]
    hold: Option<f64>,
    /// Cancel codes: an import TOML or one code a line [default: the demo's].
    #[arg(long, value_name = "FILE")]
    codes: Option<PathBuf>,
    /// How keys are sent.
    #[arg(long, value_parser = ["rfc4733", "inband"], default_value = "rfc4733")]
    keys: String,
    /// Stream 20 ms audio frames for the whole call (in-band keys always do).
    #[arg(long, overrides_with = "no_audio")]
    audio: bool,
    /// Send RTP only for keys.
    #[arg(long)]
    no_audio: bool,
    /// The number called.
    #[arg(long, default_value = "800082653")]
    number: String,
    /// Every call from this caller number [default: a new number per
    /// call, 39 and the call's index].
    #[arg(long, value_name = "NUMBER", conflicts_with = "callers")]
    caller: Option<String>,
    /// Calls cycle over this many caller numbers (39 and the index modulo
    /// N): a guesser's handful of numbers.
    #[arg(long, value_name = "N")]
    callers: Option<u64>,
    /// What `{guess}` in a keys step types: codes in order from
    /// --guess-start, or at random.
    #[arg(long, value_parser = ["sequential", "random"], default_value = "sequential")]
    guesses: String,
    /// Digits of each guessed code.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(4..=12))]
    guess_digits: u8,
    /// The first sequential guess.
    #[arg(long, default_value_t = 0)]
    guess_start: u64,
    /// Seconds without a final answer to an INVITE before it fails.
    #[arg(long, default_value_t = 32.0)]
    setup_timeout: f64,
    /// After the run, check every call that pressed 1 in the server's store
    /// (a SQLite file or a database URL).
    #[arg(long, value_name = "DB")]
    store_check: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Measure the loopback ceiling (UDP packets/s) this many seconds per
    /// mode instead of placing calls.
    #[arg(long, value_name = "SECS")]
    ceiling: Option<f64>,
}

#[derive(clap::Args, Debug)]
struct DtmfPcapArgs {
    /// The keys, e.g. "58213#1" (0-9, *, #, A-D).
    keys: String,
    /// The pcap file to write.
    file: PathBuf,
    /// RFC 4733 telephone-events, or in-band tones in the audio.
    #[arg(long, value_parser = ["rfc4733", "inband"], default_value = "rfc4733")]
    mode: String,
    /// The audio codec (silence frames, in-band tones).
    #[arg(long, value_parser = ["pcma", "pcmu"], default_value = "pcma")]
    law: String,
    /// telephone-event payload type, 96-127 (as in the scenario's SDP).
    #[arg(long, default_value_t = 101)]
    payload_type: u8,
    /// Silence before the first key, ms.
    #[arg(long, default_value_t = 1000)]
    lead_in_ms: u64,
    /// How long each key is held, ms.
    #[arg(long, default_value_t = 100)]
    tone_ms: u64,
    /// Pause after each key, ms.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// Silence after the last key, ms.
    #[arg(long, default_value_t = 1000)]
    tail_ms: u64,
}

#[derive(Subcommand, Debug)]
enum CodesCommand {
    /// Write a new random code key to FILE (readable by its owner only;
    /// an existing file is never overwritten).
    NewKey { file: PathBuf },
    /// The codes in use by length, the ente's minimum, the line's budget
    /// of wrong codes and how long guessing takes (docs/security.md).
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// New random codes for the children with short codes (or the ones
    /// named), written once to a CSV file for the letters.
    Reissue {
        /// Every child whose code has fewer digits than this.
        #[arg(long, value_name = "DIGITS", required_unless_present = "child")]
        shorter_than: Option<u8>,
        /// This child (user code); repeat for more. Always given a new code.
        #[arg(long, value_name = "USER_CODE", conflicts_with = "shorter_than")]
        child: Vec<String>,
        /// Digits of the new codes [default: the ente's minimum, and at
        /// least --shorter-than].
        #[arg(long)]
        digits: Option<u8>,
        /// The CSV file for the letters (user code, name, new code): the
        /// only place the new codes exist in clear. Must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Who does it, for the audit log.
        #[arg(long, env = "USER", default_value = "cli")]
        operator: String,
    },
}

#[derive(Subcommand, Debug)]
enum DialplanCommand {
    /// Check a dialplan: prompts, actions, target states, reachability,
    /// dead ends, timeout paths. Exit status 1 with each problem listed.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A prompt folder whose <lang>/catalogue.toml to check prompt ids
        /// against (default: the catalogues built in).
        #[arg(long)]
        prompts: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Parses the command line, runs it, and maps errors to an exit code with
/// a message on standard error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Its fallback report of a failed log write is an eprintln!, which
        // panics when stderr is closed: a server must outlive its terminal.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mensa: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = String::new();
    let result = runtime.block_on(run(cli, &mut out));
    // Output goes out in one write; a closed pipe (`| head`) is not an error.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mensa: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, out: &mut String) -> Result<ExitCode> {
    let url = cli.database_url.clone();
    let key = configured_key(cli.code_key_file.as_deref())?;
    let open = |url: Option<String>| async move {
        let url = url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        Store::open(&url)
            .await
            .with_context(|| format!("cannot open the database {}", redact_url(&url)))
    };
    // The same for the commands that hash cancel codes.
    let open_keyed = |url: Option<String>, key: Option<CodeKey>| async move {
        keyed(open(url).await?, key, false).await
    };
    match cli.command {
        Command::Dialplan {
            command: DialplanCommand::Check { files, prompts },
        } => dialplan_check(out, &files, prompts.as_deref()),
        Command::Import { file } => {
            let store = open_keyed(url, key).await?;
            import_file(out, &store, &file).await
        }
        Command::Codes { command } => match command {
            CodesCommand::NewKey { file } => new_key(out, &file),
            CodesCommand::Status { format } => {
                codes_status(out, &open_keyed(url, key).await?, format).await
            }
            CodesCommand::Reissue {
                shorter_than,
                child,
                digits,
                out: file,
                operator,
            } => {
                let which = match shorter_than {
                    Some(n) => ReissueWhich::ShorterThan(n),
                    None => ReissueWhich::Children(
                        child
                            .iter()
                            .map(|c| UserCode::parse(c))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                let store = open_keyed(url, key).await?;
                reissue(out, &store, &which, digits, &file, &operator).await
            }
        },
        Command::Calendar {
            user_code,
            month,
            format,
        } => calendar(out, &open(url).await?, &user_code, &month, format).await,
        Command::PhoneTarget {
            cancel_code,
            at,
            format,
        } => phone_target(out, &open_keyed(url, key).await?, &cancel_code, &at, format).await,
        Command::CloseDay { date } => {
            let store = open(url).await?;
            let date = flag_date(&store.reach().await?, "--date", &date)?;
            let outcome = store.close_day(date, SystemClock.now()).await?;
            match outcome {
                ClosingOutcome::Closed {
                    meals_charged,
                    total_cents,
                    ..
                } => outln!(
                    out,
                    "{date} closed: {meals_charged} meals charged, {total_cents}"
                ),
                ClosingOutcome::AlreadyClosed { .. } => outln!(out, "{date} was already closed"),
                ClosingOutcome::NotYet { .. } => {
                    bail!("{date} cannot be closed before its cutoff")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Calls { date, format } => calls(out, &open(url).await?, &date, format).await,
        Command::Kitchen { date, format } => kitchen(out, &open(url).await?, &date, format).await,
        Command::Ledger { user_code, format } => {
            ledger(out, &open(url).await?, &user_code, format).await
        }
        Command::Serve {
            now,
            now_on_real_data,
            demo,
            config,
            sip_listen,
            sip_advertise,
            rtp_ports,
            http_listen,
            operator_token,
        } => {
            let overrides = runtime::config::Overrides {
                sip_listen,
                sip_advertise,
                rtp_ports,
            };
            let api = crate::api::ApiConfig {
                operator_token: operator_token.filter(|t| !t.trim().is_empty()),
                ..Default::default()
            };
            let clock = ClockArgs {
                now,
                on_real_data: now_on_real_data,
            };
            serve(url, key, clock, demo, config, overrides, http_listen, api).await
        }
        Command::DtmfPcap(args) => dtmf_pcap(out, &args),
        Command::Load(args) => load(out, *args, key).await,
    }
}

/// `mensa load`: the run blocks one thread of its own (the generator's
/// event loop); the store check, if any, reads the store after it.
async fn load(out: &mut String, args: LoadArgs, key: Option<CodeKey>) -> Result<ExitCode> {
    use crate::load::{self, KeyMode, Script};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    if let Some(secs) = args.ceiling {
        let each = Duration::from_secs_f64(secs.max(0.1));
        let c = tokio::task::spawn_blocking(move || load::ceiling::measure(each)).await??;
        if args.json {
            outln!(out, "{}", serde_json::to_string(&c)?);
        } else {
            outln!(
                out,
                "loopback ceiling ({} B datagrams, {:.1} s each): batched {:.0}/s, one call per packet {:.0}/s",
                c.payload_bytes,
                c.seconds_each,
                c.batched_per_s,
                c.one_call_per_packet_per_s
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (script_spec, script) = match args.hold {
        Some(h) => (
            format!("wait:{},bye", (h * 1000.0) as u64),
            Script::hold(Duration::from_secs_f64(h.max(0.0))),
        ),
        None => (args.script.clone(), Script::parse(&args.script)?),
    };
    let codes = match &args.codes {
        Some(file) => crate::load::script::parse_codes(
            &std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?,
        ),
        None => crate::load::script::parse_codes(include_str!("demo.toml")),
    };
    if script.uses_code() && codes.is_empty() {
        bail!("the script types {{code}} but there are no cancel codes");
    }
    let keys = if args.keys == "inband" {
        KeyMode::InBand
    } else {
        KeyMode::Rfc4733
    };
    let store = match &args.store_check {
        Some(db) => {
            let url = load::check::store_url(db);
            let store = Store::open(&url)
                .await
                .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
            let store = keyed(store, key, false).await?;
            let since = load::check::last_call_id(&store).await?;
            Some((store, since))
        }
        None => None,
    };
    let config = load::LoadConfig {
        target: args.target,
        local_ip: args.local,
        rate: args.rate,
        concurrent: args.concurrent.max(1),
        calls: args.calls.or(args.duration.is_none().then_some(10)),
        duration: args.duration.map(|d| Duration::from_secs_f64(d.max(0.0))),
        script_spec,
        script,
        codes,
        keys,
        audio: args.audio || !args.no_audio,
        setup_timeout: Duration::from_secs_f64(args.setup_timeout.max(0.1)),
        number: args.number.clone(),
        callers: match (&args.caller, args.callers) {
            (Some(number), _) => load::script::Callers::One(number.clone()),
            (None, Some(n)) => load::script::Callers::Cycle(n.max(1)),
            (None, None) => load::script::Callers::EachCall,
        },
        guesses: load::script::Guesses {
            digits: args.guess_digits,
            random: args.guesses == "random",
            start: args.guess_start,
        },
        progress: !args.quiet,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::Relaxed);
        }
    });
    let (mut report, cancelling) =
        tokio::task::spawn_blocking(move || load::run(config, stop)).await??;
    if let Some((store, since)) = store {
        // The server stores a call record when the call ends, just after
        // our BYE: give the last ones a moment.
        let mut check = load::check::check(&store, since, &cancelling).await?;
        for _ in 0..20 {
            if check.ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            check = load::check::check(&store, since, &cancelling).await?;
        }
        report.store_check = Some(check);
    }
    if args.json {
        outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        out.push_str(&report.to_text());
    }
    let clean = report.failed == 0 && report.store_check.as_ref().is_none_or(|c| c.ok);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `mensa dtmf-pcap KEYS FILE`: builds the pcap (media::pcap), writes it.
fn dtmf_pcap(out: &mut String, args: &DtmfPcapArgs) -> Result<ExitCode> {
    use crate::media::pcap::{DtmfPcap, Mode, parse_keys};
    use std::time::Duration;
    let keys = parse_keys(&args.keys)?;
    if keys.is_empty() {
        bail!("no keys to write");
    }
    // RFC 3551 §3: telephone-event takes a dynamic payload type.
    if !(96..=127).contains(&args.payload_type) {
        bail!("--payload-type must be dynamic, 96-127");
    }
    let mode = match args.mode.as_str() {
        "inband" => Mode::Inband,
        _ => Mode::Rfc4733 {
            payload_type: args.payload_type,
        },
    };
    let mut pcap = DtmfPcap::new(keys, mode);
    if args.law == "pcmu" {
        pcap.law = crate::media::g711::Law::MuLaw;
    }
    pcap.lead_in = Duration::from_millis(args.lead_in_ms);
    pcap.tone = Duration::from_millis(args.tone_ms);
    pcap.gap = Duration::from_millis(args.gap_ms);
    pcap.tail = Duration::from_millis(args.tail_ms);
    let bytes = pcap.build();
    std::fs::write(&args.file, &bytes)
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    outln!(
        out,
        "{}: {} keys as {} ({}), {} bytes",
        args.file.display(),
        pcap.keys.len(),
        args.mode,
        args.law,
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `mensa dialplan check FILE...`: every problem on its own line, prefixed
/// with the file name.
fn dialplan_check(
    out: &mut String,
    files: &[PathBuf],
    prompts: Option<&std::path::Path>,
) -> Result<ExitCode> {
    use crate::runtime::ivr_actions::{DialplanError, load_dialplan, prompt_catalogue};
    let catalogue = prompt_catalogue(prompts)?;
    let mut code = ExitCode::SUCCESS;
    for file in files {
        match load_dialplan(file, &catalogue) {
            Ok(plan) => outln!(
                out,
                "{}: ok ({} states)",
                file.display(),
                plan.states().count()
            ),
            Err(DialplanError::Invalid { problems, .. }) => {
                for problem in &problems.0 {
                    outln!(out, "{}: {problem}", file.display());
                }
                code = ExitCode::FAILURE;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

/// Hides a password in a database URL before it is printed.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

async fn import_file(out: &mut String, store: &Store, file: &PathBuf) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    import_text(
        out,
        store,
        &text,
        &file.display().to_string(),
        SystemClock.now(),
    )
    .await
}

async fn import_text(
    out: &mut String,
    store: &Store,
    text: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    let problems = match crate::import::parse(text) {
        Ok(data) => match store.import(&data, now).await? {
            Ok(summary) => {
                for warning in &data.warnings {
                    eprintln!("{name}: warning: {warning}");
                }
                outln!(
                    out,
                    "imported {name}: {} schools, {} closures, {} classes, {} adults, \
                     {} children ({} new, {} updated), {} news, {} cancel codes shorter than \
                     {} digits",
                    summary.schools,
                    summary.closures,
                    summary.classes,
                    summary.adults,
                    summary.children_created + summary.children_updated,
                    summary.children_created,
                    summary.children_updated,
                    summary.news,
                    summary.short_cancel_codes,
                    data.ente.cancel_code_min_digits
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(problems) => problems,
        },
        Err(problems) => problems,
    };
    eprintln!(
        "{name}: {} problem(s); nothing was imported:",
        problems.len()
    );
    for p in &problems {
        eprintln!("  {p}");
    }
    Ok(ExitCode::FAILURE)
}

async fn child_by_user_code(store: &Store, code: &str) -> Result<crate::store::Child> {
    let code = UserCode::parse(code)?;
    store
        .child_by_user_code(&code)
        .await?
        .ok_or_else(|| anyhow!("no child with user code {code}"))
}

async fn calendar(
    out: &mut String,
    store: &Store,
    user_code: &str,
    month: &str,
    format: Format,
) -> Result<ExitCode> {
    let child = child_by_user_code(store, user_code).await?;
    let (first, last) = store
        .child_reach(&child)
        .await?
        .parse_month(month)
        .map_err(|e| anyhow!("--month: {e}"))?;
    let days = store
        .calendar(&child, first, last, SystemClock.now())
        .await?;
    match format {
        Format::Json => {
            let days: Vec<_> = days
                .iter()
                .map(|d| {
                    json!({
                        "date": d.date.to_string(),
                        "status": d.status.word(),
                        "channel": d.changed.map(|(c, _)| c.as_str()),
                    })
                })
                .collect();
            outln!(
                out,
                "{}",
                json!({"user_code": child.user_code.as_str(), "month": month, "days": days})
            );
        }
        Format::Text => {
            outln!(
                out,
                "{} {} ({}), {} {}: {month}",
                child.first_name,
                child.last_name,
                child.user_code,
                child.school,
                child.class
            );
            for d in &days {
                let why = match &d.status {
                    DayStatus::NoService(reason) => format!("  ({reason})"),
                    _ => String::new(),
                };
                let by = d
                    .changed
                    .map(|(c, at)| format!("  by {c} at {}", at.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default();
                outln!(
                    out,
                    "{}  {:<3}  {:<10}{why}{by}",
                    d.date,
                    d.date.weekday(),
                    d.status.word()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A date flag (`--date`) read against `reach` (`bookings::reach`): no
/// date, or one out of reach, is an error that names the flag.
fn flag_date(reach: &Reach, flag: &str, text: &str) -> Result<NaiveDate> {
    reach.parse_date(text).map_err(|e| anyhow!("{flag}: {e}"))
}

/// "YYYY-MM-DD HH:MM" local to the ente, its date in `reach`.
fn parse_local_naive(reach: &Reach, flag: &str, text: &str) -> Result<NaiveDateTime> {
    let malformed = || anyhow!("{flag}: {text:?} is not a local time \"YYYY-MM-DD HH:MM\"");
    let (date, time) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let time = NaiveTime::parse_from_str(time.trim(), "%H:%M").map_err(|_| malformed())?;
    let date = match reach.parse_date(date) {
        Ok(date) => date,
        Err(DateError::Malformed { .. }) => return Err(malformed()),
        Err(e @ DateError::OutOfReach(_)) => bail!("{flag}: {e}"),
    };
    Ok(date.and_time(time))
}

/// [`parse_local_naive`] as the instant it is for the ente.
fn parse_local(
    settings: &crate::bookings::EnteSettings,
    reach: &Reach,
    flag: &str,
    text: &str,
) -> Result<DateTime<Utc>> {
    Ok(settings.instant(parse_local_naive(reach, flag, text)?))
}

async fn phone_target(
    out: &mut String,
    store: &Store,
    code: &str,
    at: &str,
    format: Format,
) -> Result<ExitCode> {
    let settings = store.settings().await?;
    let code = CancelCode::parse(code)?;
    let Some(child) = store.child_by_cancel_code(&code).await? else {
        bail!("no child with that cancel code");
    };
    let school = store.school_calendar(&child.school).await?;
    let now = parse_local(&settings, &Reach::of_school(&school), "--at", at)?;
    let window_open = settings.phone_window_open(now);
    let rules = RuleContext {
        settings: &settings,
        calendar: ServiceCalendar::new(&school, child.class_weekdays),
        now,
    };
    let target = if window_open {
        rules.target_day()
    } else {
        None
    };
    match format {
        Format::Json => outln!(
            out,
            "{}",
            json!({"window_open": window_open, "target_day": target.map(|d| d.to_string())})
        ),
        Format::Text => match (window_open, target) {
            (false, _) => outln!(
                out,
                "at {at} the phone line is closed (open from {} to {})",
                settings.phone_window_opens.format("%H:%M"),
                settings.cutoff.format("%H:%M")
            ),
            (true, Some(day)) => outln!(
                out,
                "at {at} a call for {} {} acts on {} {day}",
                child.first_name,
                child.last_name,
                day.weekday()
            ),
            (true, None) => outln!(
                out,
                "at {at} there is no service day ahead in the school year"
            ),
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn kitchen(out: &mut String, store: &Store, date: &str, format: Format) -> Result<ExitCode> {
    let date = flag_date(&store.reach().await?, "--date", date)?;
    let report = store.kitchen_report(date).await?;
    match format {
        Format::Json => outln!(out, "{}", serde_json::to_string(&report)?),
        Format::Text => {
            let state = if report.is_final {
                "final"
            } else {
                "provisional"
            };
            outln!(out, "kitchen report {date} ({state})");
            let diets = |c: &crate::bookings::closing::Counts| {
                c.diets
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            for s in &report.schools {
                outln!(
                    out,
                    "{}: meals {}, plain {}, absences {}  [{}]",
                    s.school,
                    s.totals.meals,
                    s.totals.plain_meals,
                    s.totals.absences,
                    diets(&s.totals)
                );
                for c in &s.classes {
                    outln!(
                        out,
                        "  {:<6} meals {}, plain {}, absences {}  [{}]",
                        c.class.as_str(),
                        c.counts.meals,
                        c.counts.plain_meals,
                        c.counts.absences,
                        diets(&c.counts)
                    );
                }
            }
            outln!(
                out,
                "total: meals {}, plain {}, absences {}  [{}]",
                report.totals.meals,
                report.totals.plain_meals,
                report.totals.absences,
                diets(&report.totals)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ledger(
    out: &mut String,
    store: &Store,
    user_code: &str,
    format: Format,
) -> Result<ExitCode> {
    let child = child_by_user_code(store, user_code).await?;
    let ledger = store.ledger(&child).await?;
    match format {
        Format::Json => outln!(
            out,
            "{}",
            json!({
                "user_code": child.user_code.as_str(),
                "balance_cents": ledger.balance_cents.0,
                "low_balance": ledger.low_balance,
                "entries": ledger.entries,
            })
        ),
        Format::Text => {
            outln!(
                out,
                "{} {} ({})",
                child.first_name,
                child.last_name,
                child.user_code
            );
            for e in &ledger.entries {
                outln!(
                    out,
                    "{}  {:<10} {:>12}  {}",
                    e.at.format("%Y-%m-%d"),
                    e.kind.as_str(),
                    e.amount_cents.to_string(),
                    e.description
                );
            }
            let low = if ledger.low_balance { "  (low)" } else { "" };
            outln!(out, "balance {}{low}", ledger.balance_cents);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn calls(out: &mut String, store: &Store, date: &str, format: Format) -> Result<ExitCode> {
    let date = flag_date(&store.reach().await?, "--date", date)?;
    let settings = store.settings().await?;
    let from = settings.instant(date.and_time(chrono::NaiveTime::MIN));
    let next = date
        .succ_opt()
        .ok_or_else(|| anyhow!("--date {date} is out of range"))?;
    let to = settings.instant(next.and_time(chrono::NaiveTime::MIN));
    let calls = store.calls(from, to).await?;
    match format {
        Format::Json => {
            let calls: Vec<_> = calls.iter().map(|(_, c)| c).collect();
            outln!(out, "{}", json!({"date": date.to_string(), "calls": calls}));
        }
        Format::Text => {
            outln!(out, "calls on {date}: {}", calls.len());
            for (_, c) in &calls {
                let local = |t: DateTime<Utc>| settings.local(t).format("%H:%M:%S").to_string();
                let codes: Vec<String> = c
                    .codes
                    .iter()
                    .map(|a| format!("{}{}", a.code, if a.valid { "" } else { " (wrong)" }))
                    .collect();
                outln!(
                    out,
                    "{}-{}  from {} to {}  codes [{}]  operations {}",
                    local(c.started_at),
                    c.ended_at.map(local).unwrap_or_else(|| "?".into()),
                    if c.caller.is_empty() {
                        "anonymous"
                    } else {
                        c.caller.expose()
                    },
                    c.called,
                    codes.join(", "),
                    c.operations
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a newcomer needs to call the demo: the numbers, the codes, and
/// where to see the result.
fn demo_guide(
    routes: &std::collections::HashMap<String, String>,
    sip: std::net::SocketAddr,
    demo_text: &str,
    database_url: &str,
) -> String {
    let mut numbers: Vec<&String> = routes.keys().collect();
    numbers.sort();
    let mut out = String::new();
    outln!(
        out,
        "\nThe demo line answers on {sip} (SIP over UDP and TCP, from this machine):"
    );
    for number in numbers {
        outln!(out, "  call sip:{number}@{sip}");
    }
    outln!(
        out,
        "Type a cancel code, then #, then 1 to cancel the next meal:"
    );
    let table: toml::Table = toml::from_str(demo_text).unwrap_or_default();
    let children = table.get("children").and_then(|c| c.as_array());
    for child in children.into_iter().flatten() {
        let field = |name: &str| child.get(name).and_then(|v| v.as_str()).unwrap_or("?");
        outln!(
            out,
            "  {} {} ({} {}): cancel code {}, user code {}",
            field("first_name"),
            field("last_name"),
            field("school"),
            field("class"),
            field("cancel_code"),
            field("user_code")
        );
    }
    outln!(
        out,
        "The result: mensa calendar --user-code {} --month YYYY-MM --database-url {database_url}",
        children
            .and_then(|c| c.first())
            .and_then(|c| c.get("user_code"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
    );
    outln!(out, "A call in one command: see docs/testing-calls.md");
    out
}

/// The demo data with its school year moved to the one of `today`.
pub fn demo_data(today: NaiveDate) -> String {
    let year = if today.month() >= 8 {
        today.year()
    } else {
        today.year() - 1
    };
    include_str!("demo.toml")
        .replace("{Y1}", &(year + 1).to_string())
        .replace("{Y}", &year.to_string())
}

/// `serve`'s clock flags.
struct ClockArgs {
    /// `--now`: the local time the clock starts at.
    now: Option<String>,
    /// `--now-on-real-data`.
    on_real_data: bool,
}

#[allow(clippy::too_many_arguments)] // the flags of `serve`, passed on once
async fn serve(
    url: Option<String>,
    key: Option<CodeKey>,
    clock_args: ClockArgs,
    demo: bool,
    config: Option<PathBuf>,
    overrides: runtime::config::Overrides,
    http_listen: std::net::SocketAddr,
    api: crate::api::ApiConfig,
) -> Result<ExitCode> {
    // The config, the prompts and --now first: a mistake there stops us
    // before anything is opened. --now is read within the frame here (the
    // demo's school year is made from it) and against the schools' reach
    // once they are known.
    let now_local = clock_args
        .now
        .as_deref()
        .map(|text| parse_local_naive(&Reach::FRAME, "--now", text))
        .transpose()?;
    let mut settings = runtime::config::ServeSettings::load(config.as_deref())?;
    settings.apply(&overrides);
    let resolved = settings.resolve(rand::random())?;
    let http_limits = settings.http.limits()?;
    let prompts = crate::media::prompts::PromptLibrary::load(&resolved.prompts)
        .context("cannot load the prompts")?;
    let route_names = settings
        .sip
        .routes
        .values()
        .cloned()
        .chain(settings.sip.default_route.clone());
    let dialplans = runtime::ivr_call::load_voice_line(
        route_names,
        &settings.ivr.dialplans,
        &resolved.prompts,
        &prompts,
    )
    .context("cannot start the voice line")?;
    let demo_file = (demo && url.is_none())
        .then(|| std::env::temp_dir().join(format!("mensa-demo-{}.db", std::process::id())));
    let remove_demo_file = || {
        if let Some(path) = &demo_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    };
    remove_demo_file();
    let url = match (&url, &demo_file) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => format!("sqlite://{}", path.display()),
        (None, None) => DEFAULT_DATABASE_URL.to_string(),
    };
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    let store = keyed(store, key, demo).await?;
    let guards = settings.ivr.guards()?;
    let mut clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The demo's school year is the one of the clock it will run under.
    let demo_today = now_local.map_or_else(|| clock.now().date_naive(), |local| local.date());
    let demo_text = demo.then(|| demo_data(demo_today));
    if let Some(text) = &demo_text {
        let mut report = String::new();
        let imported = import_text(&mut report, &store, text, "demo data", clock.now()).await?;
        print!("{report}");
        if imported != ExitCode::SUCCESS {
            bail!("the built-in demo data did not import");
        }
    }
    let settings_db = store.settings().await?;
    // Before anything runs under it: a clock set by hand closes and
    // charges days, so it must not meet real closings, nor the real clock
    // closings made ahead of it (runtime::clock::check_clocks).
    let closings = store.closings_by_clock(SystemClock.now()).await?;
    runtime::clock::check_clocks(clock_args.now.is_some(), clock_args.on_real_data, &closings)?;
    let mut store = store;
    if let Some(text) = &clock_args.now {
        let reach = store.reach().await?;
        let start = parse_local(&settings_db, &reach, "--now", text)?;
        clock = Arc::new(ShiftedClock::starting_at(start));
        store = store.under_clock(ClockKind::Shifted);
        if closings.last_real.is_some() {
            tracing::warn!(
                "--now-on-real-data: a clock set by hand runs on a database closed under the real \
                 clock; it will close and charge every day up to its date"
            );
        }
    }
    // Signal handlers first: a SIGTERM right after "serving" must stop us
    // gracefully, not kill us.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    let started = store
        .mark_service_started(settings_db.today(clock.now()))
        .await?;
    let listener = runtime::http::bind(http_listen)
        .await
        .with_context(|| format!("cannot listen on {http_listen}"))?;
    let mut advertise = resolved.endpoint.advertise;
    let state = crate::api::AppState::new(store.clone(), clock.clone(), api);
    let actions = Arc::new(
        runtime::ivr_actions::IvrActions::new(store.clone(), clock.clone(), guards)
            .with_metrics(state.metrics.clone()),
    );
    // Before the first call: the alert and the budget in /metrics, and
    // an error here (the code space unreadable) stops the start.
    actions
        .check_line(true)
        .await
        .context("cannot read the phone line's counts of codes")?;
    let line_watch = tokio::spawn(actions.clone().watch(std::time::Duration::from_secs(5)));
    let voice_line = runtime::ivr_call::IvrCallLogic::new(
        dialplans,
        actions,
        store.clone(),
        clock.clone(),
        state.metrics.clone(),
    );
    let calls = runtime::calls::start(
        resolved.calls,
        resolved.endpoint,
        Arc::new(prompts),
        Arc::new(voice_line),
    )
    .await
    .context("cannot start the phone line")?;
    state
        .sip_listening
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let http_addr = listener.local_addr().unwrap_or(http_listen);
    if advertise.port() == 0 {
        // Listening on port 0: the endpoint advertises the port bound.
        advertise.set_port(calls.sip_addr.port());
    }
    tracing::info!(
        database = %redact_url(&url),
        now = %settings_db.local(clock.now()),
        service_started_on = %started,
        sip = %calls.sip_addr,
        http = %http_addr,
        advertise = %advertise,
        rtp_ports = %settings.sip.rtp_ports,
        "mensa serving"
    );
    if advertise.ip().is_loopback() && !settings.sip.listen.ip().is_loopback() {
        tracing::warn!(
            %advertise,
            "no address to advertise but loopback: set --sip-advertise for calls from other hosts"
        );
    }
    if let Some(text) = &demo_text {
        print!(
            "{}",
            demo_guide(&settings.sip.routes, calls.sip_addr, text, &url)
        );
    }
    let scheduler = tokio::spawn(runtime::scheduler::run(
        store.clone(),
        clock.clone(),
        settings.privacy.retention()?,
    ));
    let health = state.sip_listening.clone();
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(runtime::http::serve_with(
        listener,
        state,
        http_limits,
        async {
            let _ = stopped.await;
        },
    ));
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("interrupted; stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM; stopping"),
    }
    // Calls in progress finish (up to [shutdown] grace_secs); a second
    // signal stops at once. /health stops reporting SIP at once, so a
    // balancer moves new calls elsewhere.
    health.store(false, std::sync::atomic::Ordering::Relaxed);
    let shutdown = calls.shutdown();
    tokio::select! {
        () = shutdown => {}
        _ = interrupt.recv() => tracing::warn!("interrupted again; not waiting for calls"),
        _ = terminate.recv() => tracing::warn!("SIGTERM again; not waiting for calls"),
    }
    // The API serves until the calls are done.
    let _ = stop_http.send(());
    let _ = http.await;
    scheduler.abort();
    line_watch.abort();
    store.close().await;
    remove_demo_file();
    Ok(ExitCode::SUCCESS)
}
