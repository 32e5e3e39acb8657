//! The controller refuses, at Apply, every fleet manifest of the security review's C2 and H1
//! probes, even when a client skips fleetctl's own check (a raw Apply): free-form FFmpeg
//! arguments in any spelling, x264 options that write files, and a tolerance that would let a
//! 0.2 s output pass for a 2 s recording. Nothing is stored and nothing reaches an agent.

use crate::support;

use h264_proto::v1::{ApplyRequest, ListRevisionsRequest};
use support::*;

fn manifest_with(transcode: &str) -> String {
    format!(
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: evil\nspec:\n  transcode: {transcode}\n"
    )
}

#[tokio::test]
async fn apply_refuses_every_forbidden_argument_form() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let cases = [
        // A bare path is another output: write or overwrite any file.
        (
            r#"{extra_args: ["-map", "0", "/srv/outside/precious.mkv"]}"#,
            "spec.transcode.extra_args[0]",
        ),
        // Read a file into an output.
        (
            r#"{extra_args: ["-attach", "/etc/passwd", "-metadata:s:t", "mimetype=text/plain"]}"#,
            "spec.transcode.extra_args[0]",
        ),
        // Read a file back through the error text.
        (
            r#"{extra_args: ["-filter_complex_script", "/etc/passwd"]}"#,
            "spec.transcode.extra_args[0]",
        ),
        // Send a file over the network.
        (
            r#"{extra_args: ["-f:o", "matroska", "tcp://127.0.0.1:9"]}"#,
            "spec.transcode.extra_args[0]",
        ),
        // The deny-list bypass: -f spelt -f:x.
        (
            r#"{extra_args: ["-f:x", "ffmetadata", "/srv/f-bypass.txt"]}"#,
            "spec.transcode.extra_args[0]",
        ),
        // H1: 0.2 s outputs and a tolerance wide enough to pass them.
        (
            r#"{duration_tolerance: 1000h, extra_args: ["-t", "0.2"]}"#,
            "spec.transcode.duration_tolerance",
        ),
        (
            r#"{duration_tolerance: 1000h}"#,
            "spec.transcode.duration_tolerance",
        ),
        (
            r#"{x264_params: "stats=/srv/outside/victim"}"#,
            "spec.transcode.x264_params",
        ),
        (
            r#"{local_ffmpeg_args: ["-an"]}"#,
            "spec.transcode.local_ffmpeg_args",
        ),
    ];
    for (transcode, key) in cases {
        let refused = admin
            .apply(ApplyRequest {
                manifest: manifest_with(transcode),
                ..Default::default()
            })
            .await
            .expect_err(transcode);
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{transcode}");
        assert!(
            refused.message().contains(key),
            "{transcode}: {}",
            refused.message()
        );
    }
    let revisions = admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions;
    assert!(revisions.is_empty(), "{revisions:?}");
    // The typed settings that replace them are accepted.
    let typed = manifest_with(
        r#"{tune: film, x264_params: "ref=4:bframes=3", keyframe_interval: 50, maxrate: 4M, bufsize: 8M, max_height: 720, frame_rate: "25", audio_channels: 2, audio_sample_rate: 48000}"#,
    );
    let reply = apply(&mut admin, &typed).await;
    assert_eq!(reply.generation, 1);
}
