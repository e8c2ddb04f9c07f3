//! What a container's process may be given: environment variables, a
//! working directory and a user. The service's doors (the Zun and Docker
//! APIs) and the agent's (each command the relay delivers) check the same
//! rules, from here, so that what one refuses the other refuses too. The
//! callers name the field; these say what is wrong with it.

/// Most environment variables one process may be given.
pub const MAX_ENV_VARS: usize = 256;
/// Longest name or value of an environment variable, bytes.
pub const MAX_ENV_ENTRY_BYTES: usize = 4096;
/// Longest user (`name`, `uid`, `uid:gid`, `name:group`), bytes; Linux
/// names are at most 32, so this only stops absurd input.
pub const MAX_USER_BYTES: usize = 255;

/// Why an input cannot be given to a process.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcessInputError {
    /// More variables than [`MAX_ENV_VARS`].
    #[error("at most {MAX_ENV_VARS} variables are allowed")]
    TooManyVariables,
    /// A name that cannot be in a `NAME=value` environment string.
    #[error("{0:?} is not a variable name: it must be non-empty, without '=' or NUL")]
    VariableName(String),
    /// A NUL byte, which no C string (argv, environment, path) can carry.
    #[error("must not contain NUL")]
    Nul,
    /// A name or value longer than [`MAX_ENV_ENTRY_BYTES`].
    #[error("name and value are limited to {MAX_ENV_ENTRY_BYTES} bytes each")]
    VariableTooLong,
    /// A working directory that is not absolute.
    #[error("must be an absolute path")]
    RelativePath,
    /// A working directory with `.` or `..` parts, or NUL.
    #[error("must be a normalised path, without NUL, '.' or '..'")]
    UnnormalisedPath,
    /// A user that is empty, too long, or holds spaces or control
    /// characters.
    #[error(
        "must be a name or uid[:gid] of at most {MAX_USER_BYTES} bytes, without spaces or \
         control characters"
    )]
    User,
}

/// Checks how many variables there are.
///
/// # Errors
/// [`ProcessInputError::TooManyVariables`].
pub fn check_env_count(count: usize) -> Result<(), ProcessInputError> {
    if count > MAX_ENV_VARS {
        return Err(ProcessInputError::TooManyVariables);
    }
    Ok(())
}

/// Checks one environment variable: a non-empty name without `=` or NUL,
/// a value without NUL, both bounded.
///
/// # Errors
/// [`ProcessInputError::VariableName`], [`ProcessInputError::Nul`] (in the
/// value) or [`ProcessInputError::VariableTooLong`].
pub fn check_env_var(name: &str, value: &str) -> Result<(), ProcessInputError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(ProcessInputError::VariableName(
            name.chars().take(64).collect(),
        ));
    }
    if value.contains('\0') {
        return Err(ProcessInputError::Nul);
    }
    if name.len() > MAX_ENV_ENTRY_BYTES || value.len() > MAX_ENV_ENTRY_BYTES {
        return Err(ProcessInputError::VariableTooLong);
    }
    Ok(())
}

/// Checks a working directory: absolute and normalised (no `.` or `..`
/// parts), as the engine resolves it inside the container.
///
/// # Errors
/// [`ProcessInputError::RelativePath`] or
/// [`ProcessInputError::UnnormalisedPath`].
pub fn check_workdir(workdir: &str) -> Result<(), ProcessInputError> {
    if !workdir.starts_with('/') {
        return Err(ProcessInputError::RelativePath);
    }
    if workdir.contains('\0') || workdir.split('/').any(|part| part == "." || part == "..") {
        return Err(ProcessInputError::UnnormalisedPath);
    }
    Ok(())
}

/// Checks a user as the engine takes it (`name`, `uid`, `uid:gid`,
/// `name:group`): non-empty, bounded, without whitespace or control
/// characters. Whether it exists in the image is the engine's question.
///
/// # Errors
/// [`ProcessInputError::User`].
pub fn check_user(user: &str) -> Result<(), ProcessInputError> {
    if user.is_empty()
        || user.len() > MAX_USER_BYTES
        || user.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ProcessInputError::User);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_need_a_plain_name_and_a_value_without_nul() {
        assert_eq!(check_env_var("A", "B"), Ok(()));
        assert_eq!(check_env_var("A", ""), Ok(()));
        for name in ["", "A=B", "A\0"] {
            assert!(
                matches!(
                    check_env_var(name, "x"),
                    Err(ProcessInputError::VariableName(_))
                ),
                "{name:?}"
            );
        }
        assert_eq!(check_env_var("A", "x\0y"), Err(ProcessInputError::Nul));
        let long = "x".repeat(MAX_ENV_ENTRY_BYTES + 1);
        assert_eq!(
            check_env_var("A", &long),
            Err(ProcessInputError::VariableTooLong)
        );
        assert_eq!(check_env_count(MAX_ENV_VARS), Ok(()));
        assert_eq!(
            check_env_count(MAX_ENV_VARS + 1),
            Err(ProcessInputError::TooManyVariables)
        );
    }

    #[test]
    fn workdirs_are_absolute_and_normalised() {
        assert_eq!(check_workdir("/"), Ok(()));
        assert_eq!(check_workdir("/srv/app"), Ok(()));
        assert_eq!(
            check_workdir("relative"),
            Err(ProcessInputError::RelativePath)
        );
        for bad in ["/srv/../etc", "/./x", "/x\0"] {
            assert_eq!(
                check_workdir(bad),
                Err(ProcessInputError::UnnormalisedPath),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn users_are_plain_and_bounded() {
        for good in ["root", "65534", "1000:1000", "www-data:www-data"] {
            assert_eq!(check_user(good), Ok(()), "{good}");
        }
        let long = "u".repeat(MAX_USER_BYTES + 1);
        for bad in ["", "a b", "a\nb", "a\0", long.as_str()] {
            assert_eq!(check_user(bad), Err(ProcessInputError::User), "{bad:?}");
        }
    }
}
