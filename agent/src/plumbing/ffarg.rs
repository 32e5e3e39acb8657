//! Safe spelling of file names on FFmpeg command lines (as inputs, and inside lavfi graphs).

use std::ffi::OsString;
use std::path::Path;

/// `file:PATH`: FFmpeg then never reads the name as an option (a leading `-`) or as another
/// protocol (a name containing `:`).
pub fn input_arg(path: &Path) -> OsString {
    let mut arg = OsString::from("file:");
    arg.push(path.as_os_str());
    arg
}

/// The first `end` bytes of `path` as an FFmpeg input, through its `subfile` protocol
/// (`subfile,,start,0,end,N,,:file:PATH`): a transport stream read up to its last whole packet
/// without copying it. The name after `,,:` is taken as it is, commas and colons included.
pub fn input_arg_until(path: &Path, end: u64) -> OsString {
    let mut arg = OsString::from(format!("subfile,,start,0,end,{end},,:"));
    arg.push(input_arg(path));
    arg
}

/// A file name as a value inside a lavfi filter graph: escaped for the filter's option parser
/// (`\ ' :`), then for the graph parser (`\ ' [ ] , ;`).
pub fn lavfi_escape(path: &Path) -> String {
    let escape = |s: &str, special: &[char]| -> String {
        s.chars()
            .flat_map(|c| {
                let prefix = special.contains(&c).then_some('\\');
                prefix.into_iter().chain(std::iter::once(c))
            })
            .collect()
    };
    let level1 = escape(&path.to_string_lossy(), &['\\', '\'', ':']);
    escape(&level1, &['\\', '\'', '[', ']', ',', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_of_the_file() {
        assert_eq!(
            input_arg_until(Path::new("-a, b:c.ts"), 1880),
            OsString::from("subfile,,start,0,end,1880,,:file:-a, b:c.ts")
        );
    }

    #[test]
    fn leading_dash_is_not_an_option() {
        assert_eq!(
            input_arg(Path::new("-show.ts")),
            OsString::from("file:-show.ts")
        );
    }

    #[test]
    fn escapes_for_both_parsers() {
        assert_eq!(lavfi_escape(Path::new("/a b/c.mp4")), "/a b/c.mp4");
        assert_eq!(
            lavfi_escape(Path::new("/x/it's:[1],2;3")),
            r"/x/it\\\'s\\:\[1\]\,2\;3"
        );
    }
}
