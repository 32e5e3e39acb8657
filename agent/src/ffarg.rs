//! Safe spelling of file names on FFmpeg command lines.

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
}
