//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against a real `h264-controller` with real `h264-agent`s. A viewer logs in with a token and
//! sees the agents, watches a rollout advance live, cannot act; an operator logs in, presses
//! undo and confirms; the fleet is back on the previous revision. On the way: agent-reported
//! text is shown as text (a file named like markup), a POST without the CSRF token is refused,
//! the job history page filters. A screenshot is kept in `target/test-artifacts/`.
//!
//! One test, one browser session (Chromium's start-up is the slow part).

use crate::bins;
use crate::controller;
use crate::fleet_agent;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use controller::ControllerProcess;
use fantoccini::{Client, ClientBuilder, Locator};
use fleet_agent::FleetAgent;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::wait_for;
use serde_json::{json, Value};

const INSTALL: &str =
    "install Chromium and its WebDriver: `apt-get install chromium chromium-driver` \
     (scripts/ensure-deps.sh does it)";

/// Disk thresholds in bytes, so a shared build machine's nearly full disk does not pause
/// intake (the default critical level is 5 %).
const DISK: &str = "[disk]\nwarn = \"2GB\"\ncritical = \"1GB\"\n";

fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn apply(url: &str, dir: &Path, spec: &str) {
    let manifest = dir.join("fleet.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: console}}\nspec:\n{spec}"),
    )
    .unwrap();
    ok(fleetctl(url, &["apply", "-f", manifest.to_str().unwrap()]));
}

fn wait_agents(url: &str, what: &str, check: impl Fn(&Value) -> bool) {
    wait_for(
        what,
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let agents = json_of(&fleetctl(url, &["get", "agents", "-o", "json"]));
            let list = agents.as_array().cloned().unwrap_or_default();
            (list.len() == 2 && list.iter().all(&check)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// chromedriver on the port it picked (`--port=0`); killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn start_driver() -> (Driver, PathBuf) {
    let driver = find_program(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver is not on PATH: {INSTALL}"));
    let browser = find_program(&["chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("Chromium is not on PATH: {INSTALL}"));
    let mut child = Command::new(driver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}; {INSTALL}"));
    // It says "ChromeDriver was started successfully on port N." once it listens.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("chromedriver did not say which port it bound; {INSTALL}"));
        if let Some(port) = line
            .split_once("started successfully on port ")
            .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse::<u16>().ok())
        {
            break port;
        }
    };
    (Driver(child, port), browser)
}

async fn browser(port: u16, binary: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("cannot start a Chromium session through chromedriver: {e}; {INSTALL}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until `check` holds for the page (polled; the page updates itself).
async fn until<T>(client: &Client, what: &str, mut check: impl FnMut(String) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let source = client.source().await.unwrap_or_default();
        if let Some(v) = check(source.clone()) {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("the page did not show {what} in time; it shows:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn login(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(client, "the fleet after login", |s| {
        s.contains("id=\"fleet\"").then_some(())
    })
    .await;
    let url = client.current_url().await.unwrap();
    assert!(!url.as_str().contains(token), "no token in URLs: {url}");
}

async fn logout(client: &Client) {
    client
        .find(Locator::Css("nav form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(client, "the login form", |s| {
        s.contains("id=\"token\"").then_some(())
    })
    .await;
}

/// What `#id`'s text is.
async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn artefact(name: &str) -> PathBuf {
    let fleetctl = PathBuf::from(env!("CARGO_BIN_EXE_fleetctl"));
    let target = fleetctl.parent().unwrap().parent().unwrap();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_watches_a_rollout_and_operator_undoes_it_in_a_real_browser() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let (driver, chromium) = start_driver();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(&config, "[web]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let bin = bins::workspace_bin("h264-controller");
    let c = ControllerProcess::start_with_config(&bin, &dir.path().join("state"), Some(&config));
    let url = c.url();
    let base = format!("http://{}", c.web_addr());
    let agents: Vec<FleetAgent> = ["studio-a", "studio-b"]
        .iter()
        .map(|id| FleetAgent::start_with(id, &url, false, &[], DISK))
        .collect();
    wait_agents(&url, "connected agents", |a| a["connected"] == true);
    ok(fleetctl(
        &url,
        &["label", "agent", "studio-a", "canary=true"],
    ));
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 30, preset: ultrafast}\n",
    );
    wait_agents(&url, "every agent on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let viewer = ok(fleetctl(
        &url,
        &["token", "create", "--name", "wall", "--role", "viewer"],
    ));
    let operator = ok(fleetctl(
        &url,
        &["token", "create", "--name", "ops", "--role", "operator"],
    ));
    // A recording whose name looks like markup: the console must show it as text.
    Fixture::H264Ts.copy_to(&agents[1].input, "<img src=x onerror=alert(1)>.ts");

    let client = browser(driver.1, &chromium).await;

    // A viewer: sees the agents, no actions.
    client.goto(&base).await.unwrap();
    until(&client, "the login page", |s| {
        s.contains("id=\"token\"").then_some(())
    })
    .await;
    login(&client, &base, &viewer).await;
    let fleet = until(&client, "both agents", |s| {
        (s.contains("data-agent=\"studio-a\"") && s.contains("data-agent=\"studio-b\""))
            .then_some(s)
    })
    .await;
    assert!(
        !fleet.contains("class=\"action\""),
        "a viewer gets no actions"
    );

    // A rollout, watched live on the rollout page.
    client.goto(&format!("{base}/rollout")).await.unwrap();
    until(&client, "no rollout yet", |s| {
        s.contains("No rollout yet").then_some(())
    })
    .await;
    client
        .execute("window.stillTheSamePage = true; return true", vec![])
        .await
        .unwrap();
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 28, preset: ultrafast}\n  rollout:\n    steps: [{canary: 1}, {pause: {}}, {percent: 100}]\n",
    );
    until(&client, "the rollout at its pause step, live", |s| {
        s.contains("id=\"rollout-step\">2</span>").then_some(())
    })
    .await;
    let same = client
        .execute("return window.stillTheSamePage === true", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "the rollout advanced without a reload");
    // Promoted (by an admin, from the CLI): the viewer sees it finish, live.
    ok(fleetctl(&url, &["rollout", "promote"]));
    until(&client, "the rollout succeeded, live", |s| {
        s.contains("data-phase=\"Succeeded\"").then_some(())
    })
    .await;
    wait_agents(&url, "every agent on generation 2", |a| {
        a["sync"] == "synced" && a["running_generation"] == 2
    });
    let shot = client.screenshot().await.unwrap();
    std::fs::write(artefact("console-rollout-viewer.png"), shot).unwrap();
    let refused = client
        .execute(
            "return fetch('/api/rollout/undo', {method: 'POST'}).then(r => r.status)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(403), "no CSRF token, no action");

    // The job history shows the file name as text.
    let jobs_url = format!("{base}/jobs?since=1h&agent=studio-b");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let jobs = loop {
        client.goto(&jobs_url).await.unwrap();
        let s = client.source().await.unwrap();
        if s.contains("&lt;img src=x onerror=alert(1)&gt;.ts") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job history page never listed the file; it shows:\n{s}\n{}",
            agents[1].log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        !jobs.contains("<img src=x"),
        "markup from an agent is escaped"
    );
    assert!(client.find(Locator::Css("#jobs img")).await.is_err());

    // The operator undoes the rollout.
    logout(&client).await;
    login(&client, &base, &operator).await;
    client.goto(&format!("{base}/rollout")).await.unwrap();
    until(&client, "the undo button", |s| {
        s.contains("data-action=\"/api/rollout/undo\"")
            .then_some(())
    })
    .await;
    // The live view replaces the section every few seconds: a button found just before may be
    // gone by the click, so find and click again.
    let mut clicked = false;
    for _ in 0..20 {
        let button = client
            .find(Locator::Css("button[data-action=\"/api/rollout/undo\"]"))
            .await;
        if let Ok(b) = button {
            if b.click().await.is_ok() {
                clicked = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clicked, "the undo button could not be pressed");
    let question = text_of(&client, "#confirm-text").await;
    assert!(question.contains("generation 1"), "{question}");
    client
        .find(Locator::Css("#confirm-yes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&client, "the undo's answer", |s| {
        s.contains("rollout undo: now").then_some(())
    })
    .await;

    // The fleet page shows every agent back on generation 1, live.
    client.goto(&base).await.unwrap();
    until(&client, "the fleet back on generation 1", |s| {
        (s.matches("class=\"generation\">1</td>").count() == 2).then_some(())
    })
    .await;
    let shot = client.screenshot().await.unwrap();
    std::fs::write(artefact("console-fleet-after-undo.png"), shot).unwrap();
    wait_agents(&url, "every agent on generation 1 again", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    client.close().await.unwrap();
    drop(agents);
}
