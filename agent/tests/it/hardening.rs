//! The security review's probes against the real agent (C2, H1): free-form FFmpeg arguments
//! refused by `--check` in every forbidden form, the fixed coverage floor that keeps a source
//! whose output came out short, and FFmpeg and ffprobe kept to local files and pipes.

use crate::common;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;

/// `h264-agent --check` on the base config plus `transcode` lines.
fn check(transcode: &str) -> std::process::Output {
    let s = Setup::new("", &format!("[transcode]\n{transcode}\n"));
    std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--config")
        .arg(&s.config)
        .arg("--check")
        .output()
        .unwrap()
}

#[test]
fn check_refuses_every_forbidden_argument_form_with_its_key_and_reason() {
    let cases = [
        // A bare path is another output (write or overwrite any file).
        (
            r#"local_ffmpeg_args = ["-an", "/srv/outside/precious.mkv"]"#,
            "local_ffmpeg_args[1]",
            "another output file",
        ),
        (
            r#"local_ffmpeg_args = ["-attach", "secret.txt"]"#,
            "local_ffmpeg_args[0]",
            "reads a file",
        ),
        (
            r#"local_ffmpeg_args = ["-dump_attachment:t", "x"]"#,
            "local_ffmpeg_args[0]",
            "writes files",
        ),
        (
            r#"local_ffmpeg_args = ["-filter_complex_script", "secret"]"#,
            "local_ffmpeg_args[0]",
            "reads a file",
        ),
        (
            r#"local_ffmpeg_args = ["-f:x", "ffmetadata"]"#,
            "local_ffmpeg_args[0]",
            "output format",
        ),
        (
            r#"local_ffmpeg_args = ["-metadata", "tcp://127.0.0.1:9"]"#,
            "local_ffmpeg_args[1]",
            "is a URL",
        ),
        (
            r#"local_ffmpeg_args = ["-vf", "movie=secret.png"]"#,
            "local_ffmpeg_args[1]",
            "`movie`",
        ),
        (
            r#"local_ffmpeg_args = ["-af", "amovie=secret.wav"]"#,
            "local_ffmpeg_args[1]",
            "`amovie`",
        ),
        (
            r#"local_ffmpeg_args = ["-vf", "sendcmd=f=cmds.txt"]"#,
            "local_ffmpeg_args[1]",
            "`sendcmd`",
        ),
        (
            r#"local_ffmpeg_args = ["-vf", "drawtext=textfile=secret"]"#,
            "local_ffmpeg_args[1]",
            "`textfile`",
        ),
        (
            r#"local_ffmpeg_args = ["-vf", "subtitles=x.srt"]"#,
            "local_ffmpeg_args[1]",
            "`subtitles`",
        ),
        (
            r#"local_ffmpeg_args = ["-t", "0.2"]"#,
            "local_ffmpeg_args[0]",
            "cuts the output short",
        ),
        // The deprecated name is read as local arguments, with the same checks.
        (
            r#"extra_args = ["-f:x", "ffmetadata"]"#,
            "extra_args[0]",
            "output format",
        ),
        (r#"x264_params = "stats=/srv/x""#, "x264_params", "`stats`"),
        (
            r#"duration_tolerance = "1000h""#,
            "duration_tolerance",
            "largest allowed",
        ),
    ];
    for (transcode, key, reason) in cases {
        let out = check(transcode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{transcode}: {stderr}");
        assert!(
            stderr.contains(&format!("transcode.{key}")) && stderr.contains(reason),
            "{transcode}: {stderr}"
        );
    }
    let typed = "tune = \"film\"\nx264_params = \"ref=2:bframes=2\"\nkeyframe_interval = 50\n\
                 maxrate = \"2M\"\nbufsize = \"4M\"\nmax_height = 720\nframe_rate = \"25\"\n\
                 audio_channels = 2\naudio_sample_rate = 48000\n\
                 local_ffmpeg_args = [\"-movflags\", \"+faststart\", \"-an\"]";
    let out = check(typed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Review H1: the strongest tolerance a config may choose (2 s) and an output cut to 1.5 s of a
/// 3 s recording. The fixed floor fails verification: nothing is published and the source,
/// under `on_success = "delete"`, is kept.
#[test]
fn an_output_that_falls_short_is_never_published_and_its_source_never_deleted() {
    let s = Setup::new(
        "on_success = \"delete\"\n",
        "[readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\n\
         [transcode]\npreset = \"ultrafast\"\nremux = false\nmax_attempts = 1\n\
         duration_tolerance = \"2s\"\nlocal_ffmpeg_args = [\"-vf\", \"trim=end=1.5\"]\n",
    );
    Fixture::H264Ts.copy_to(&s.input, "news.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(s.input.join("news.ts").exists(), "the source was deleted");
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
    let r = s.record("news.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("fixed floor"), "{error}");
}

/// A recording whose bytes are a playlist of a network URL: ffprobe and FFmpeg only open local
/// files and pipes, so nothing connects to the listener.
#[test]
fn ffmpeg_and_ffprobe_never_open_a_network_url_named_by_a_recording() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = Setup::basic();
    std::fs::write(
        s.input.join("playlist.ts"),
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\n\
             http://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n"
        ),
    )
    .unwrap();
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "FFmpeg or ffprobe connected to a URL named by a recording"
    );
    assert!(s.output_files().is_empty());
}

/// The typed settings a fleet may set reach FFmpeg: a compliant H.264 source is re-encoded
/// (not remuxed) to the height, frame rate, channels and sample rate asked for.
#[test]
fn typed_encoder_settings_shape_the_output() {
    let s = Setup::new(
        "",
        "[readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\n\
         [transcode]\npreset = \"ultrafast\"\nmax_attempts = 1\ntune = \"zerolatency\"\n\
         x264_params = \"ref=1:bframes=0\"\nkeyframe_interval = 10\nmaxrate = \"500k\"\n\
         bufsize = \"1M\"\nmax_height = 64\nframe_rate = \"10\"\naudio_channels = 1\n\
         audio_sample_rate = 22050\n",
    );
    Fixture::H264Ts.copy_to(&s.input, "show.ts");
    let out = s.run_once();
    assert!(out.status.success());
    let mp4 = s.output_of("show.ts");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_type,height,r_frame_rate,channels,sample_rate")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&mp4)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    for want in [
        "height=64",
        "r_frame_rate=10/1",
        "channels=1",
        "sample_rate=22050",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert_eq!(s.record("show.ts").unwrap().mode.as_deref(), Some("encode"));
}

/// Review M4: a password to a remote server over plain SMTP is a configuration error that
/// `--check` names with its fix; port 587 means STARTTLS unless told otherwise; loopback relays
/// and an explicit `allow_plaintext_auth` are accepted.
#[test]
fn plaintext_smtp_auth_to_a_remote_server_is_refused_by_check() {
    let run = |email: &str| {
        let s = Setup::new(
            "",
            &format!(
                "[alerts.email]\nfrom = \"agent@example.org\"\nto = [\"ops@example.org\"]\n\
                 username = \"h264create\"\npassword_env = \"SMTP_PASSWORD\"\n{email}\n"
            ),
        );
        std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
            .arg("--config")
            .arg(&s.config)
            .arg("--check")
            .output()
            .unwrap()
    };
    let refused = run("smtp = \"smtp://mail.example.org:25\"");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alerts.email.starttls") && stderr.contains("starttls = true"),
        "{stderr}"
    );
    let refused = run("smtp = \"smtp://mail.example.org:587\"\nstarttls = false");
    assert_eq!(refused.status.code(), Some(2));
    for ok in [
        "smtp = \"smtp://mail.example.org:587\"",
        "smtp = \"smtps://mail.example.org:465\"",
        "smtp = \"smtp://127.0.0.1:2525\"",
        "smtp = \"smtp://mail.example.org:25\"\nallow_plaintext_auth = true",
    ] {
        let out = run(ok);
        assert!(
            out.status.success(),
            "{ok}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
