//! Interop with sipp (Debian `sip-tester`): its built-in `uac` scenario
//! against the endpoint on loopback, answered by a stub call layer.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (STYLE.md)

use std::process::Stdio;
use std::time::Duration;

use mensa::runtime::sip::{Command, spawn};
use mensa::sip::config::EndpointConfig;
use mensa::sip::endpoint::{Endpoint, Event};

async fn run_sipp(transport: &str) {
    if std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("sipp not installed: skipped (.ci/run installs sip-tester)");
        return;
    }
    let config = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 9);
    let mut server = spawn("127.0.0.1:0".parse().unwrap(), Endpoint::new(config))
        .await
        .unwrap();
    let commands = server.commands.clone();
    tokio::spawn(async move {
        while let Some(event) = server.events.recv().await {
            if let Event::IncomingCall { call, .. } = event {
                let _ = commands.send(Command::Answer {
                    call,
                    rtp: "127.0.0.1:20000".parse().unwrap(),
                });
            }
        }
    });
    let target = server.local_addr.to_string();
    let output = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uac",
            &target,
            "-s",
            "800082653",
            "-m",
            "10",
            "-r",
            "20",
            "-t",
            transport,
        ])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-d",
            "100",
        ])
        .current_dir(std::env::temp_dir())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("sipp in time")
        .unwrap();
    assert!(
        output.status.success(),
        "sipp uac over {transport} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn sipp_uac_over_udp() {
    run_sipp("u1").await;
}

#[tokio::test]
async fn sipp_uac_over_tcp() {
    run_sipp("t1").await;
}
