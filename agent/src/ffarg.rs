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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dash_is_not_an_option() {
        assert_eq!(
            input_arg(Path::new("-show.ts")),
            OsString::from("file:-show.ts")
        );
    }
}
