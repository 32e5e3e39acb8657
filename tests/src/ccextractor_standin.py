#!/usr/bin/env python3
# A stand-in for CCExtractor in h264create's tests, written by h264_testkit::ccextractor.
#
# It follows the real program where the agent depends on it (CCExtractor 0.96.5, as the
# project's issue 18 reports it, and the public source):
#   - command line `ccextractor INPUT -o OUTPUT -out=srt|webvtt|bin`;
#   - exit codes of src/lib_ccx/ccx_common_common.h: 0 ok, 2 no input files, 7 malformed
#     parameter, 8 read error, 10 no captions;
#   - MPEG transport and program streams: the CEA-608 CC1 captions of the video are read
#     (here with FFmpeg: `movie=INPUT[out0+subcc]`, `-data_field first`) into .srt / .vtt, or
#     into RCWT .bin (CCExtractor's docs/BINARY_FILE_FORMAT.TXT: the 11-byte header, then for
#     each frame that carries caption bytes other than padding its time in ms from the first
#     video frame and its 608 blocks); no caption at all: "No captions were found in input",
#     exit 10, no output file;
#   - MP4 (an `ftyp` box): the real program finds nothing in the agent's H.264 MP4 files. It
#     exits 10 ("No captions were found in input"), or, with MP4_BEHAVIOUR = "null-path" below,
#     prints "Error: NULL file path provided to processmp4", deletes its empty output and exits 0;
#   - WTV: nothing is found (exit 10), as the real program does with FFmpeg-made WTV files.
# Anything else is refused as a read error (exit 8). With CCEXTRACTOR_STANDIN_LOG set, each run
# appends its input's path to that file, so tests can see what it was given.
import os
import subprocess
import sys

MP4_BEHAVIOUR = "exit10"

EXIT_OK, EXIT_NO_INPUT_FILES, EXIT_MALFORMED_PARAMETER = 0, 2, 7
EXIT_READ_ERROR, EXIT_NO_CAPTIONS = 8, 10
RCWT_HEADER = bytes([0xCC, 0xCC, 0xED, 0xCC, 0x00, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00])
WTV_GUID = bytes.fromhex("b7d800203749da11a64e0007e95ead8d")


def say(*lines):
    for line in lines:
        print(line, flush=True)


def no_captions(out):
    say("", "No captions were found in input.")
    if out and os.path.exists(out):
        os.remove(out)
    sys.exit(EXIT_NO_CAPTIONS)


def kind(path):
    with open(path, "rb") as f:
        head = f.read(400)
    if len(head) >= 1 and head[0] == 0x47 and (len(head) < 189 or head[188] == 0x47):
        return "ts"
    if len(head) >= 5 and head[4] == 0x47 and (len(head) < 197 or head[196] == 0x47):
        return "ts"
    if head[:4] == b"\x00\x00\x01\xba":
        return "ps"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:16] == WTV_GUID:
        return "wtv"
    return "unknown"


def movie_graph(path):
    name = "file:" + os.path.abspath(path)
    quoted = "'" + name.replace("'", "'\\''") + "'"
    quoted = "'" + quoted.replace("'", "'\\''") + "'"
    return "movie=" + quoted + "[out0+subcc]"


def video_start(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=start_time", "-of", "csv=p=0", "file:" + path],
        capture_output=True, text=True)
    try:
        # csv may end the value with a comma (an empty field of side data).
        return float(out.stdout.strip().splitlines()[0].split(",")[0])
    except (ValueError, IndexError):
        return 0.0


def caption_frames(path):
    """(pts_seconds, [triples]) of every frame with 608 bytes other than padding."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "lavfi", "-i", movie_graph(path), "-select_streams",
         "1", "-show_entries", "packet=pts_time,data", "-show_data", "-of",
         "compact=p=0:nk=1"],
        capture_output=True, text=True)
    if out.returncode != 0:
        say(out.stderr.strip())
        sys.exit(EXIT_READ_ERROR)
    frames = []
    for line in out.stdout.splitlines():
        pts, _, data = line.partition("|")
        try:
            time = float(pts)
        except ValueError:
            continue
        raw = bytearray()
        for dump in data.split("\\n"):
            if len(dump) < 10 or dump[8] != ":":
                continue
            for group in dump[10:50].split():
                try:
                    raw += bytes.fromhex(group)
                except ValueError:
                    break
        blocks = [bytes(raw[i:i + 3]) for i in range(0, len(raw) - 2, 3)]
        blocks = [b for b in blocks
                  if b[0] & 0x04 and b[0] & 0x03 == 0 and (b[1] & 0x7F or b[2] & 0x7F)]
        if blocks:
            frames.append((time, blocks))
    return frames


def main(argv):
    inputs, out, fmt = [], None, "srt"
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-o" and i + 1 < len(argv):
            out = argv[i + 1]
            i += 2
            continue
        if arg.startswith("-out="):
            fmt = arg[len("-out="):]
            if fmt not in ("srt", "webvtt", "bin"):
                say("Unknown output file format: " + fmt)
                sys.exit(EXIT_MALFORMED_PARAMETER)
        elif arg.startswith("-"):
            say("Error: Parameter " + arg + " not understood.")
            sys.exit(EXIT_MALFORMED_PARAMETER)
        else:
            inputs.append(arg)
        i += 1
    if not inputs or not os.path.isfile(inputs[0]):
        say("No input file specified, or it cannot be opened.")
        sys.exit(EXIT_NO_INPUT_FILES)
    source = inputs[0]
    log = os.environ.get("CCEXTRACTOR_STANDIN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(source + "\n")
    if out is None:
        out = os.path.splitext(source)[0] + {"webvtt": ".vtt"}.get(fmt, "." + fmt)
    found = kind(source)
    if found == "mp4":
        if MP4_BEHAVIOUR == "null-path":
            say("Error: NULL file path provided to processmp4")
            if os.path.exists(out) and os.path.getsize(out) == 0:
                os.remove(out)
            sys.exit(EXIT_OK)
        no_captions(out)
    if found == "wtv":
        no_captions(out)
    if found not in ("ts", "ps"):
        say("Unable to detect the stream type of " + source)
        sys.exit(EXIT_READ_ERROR)
    frames = caption_frames(source)
    if not frames:
        no_captions(out)
    if fmt == "bin":
        start = video_start(source)
        with open(out, "wb") as f:
            f.write(RCWT_HEADER)
            for time, blocks in frames:
                ms = max(0, round((time - start) * 1000))
                f.write(ms.to_bytes(8, "little", signed=True))
                f.write(len(blocks).to_bytes(2, "little"))
                for b in blocks:
                    f.write(b)
    else:
        codec = "webvtt" if fmt == "webvtt" else "srt"
        run = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-v", "error", "-data_field", "first",
             "-f", "lavfi", "-i", movie_graph(source), "-map", "0:s:0", "-c:s", codec, "-f",
             codec, "file:" + out],
            capture_output=True, text=True)
        if run.returncode != 0:
            say(run.stderr.strip())
            sys.exit(EXIT_READ_ERROR)
        with open(out, encoding="utf-8", errors="replace") as f:
            if "-->" not in f.read():
                no_captions(out)
    say("Done, processing time = 0 seconds")
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main(sys.argv[1:])
