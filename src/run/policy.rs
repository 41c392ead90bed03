//! What a sandbox may make writable or hide: the rules that keep `--allow`, `--deny` and the
//! base directory from opening the host, the session databases or the sandbox's own
//! machinery to the command. Pure functions over absolute paths, so every rule is tested
//! without a kernel.

use std::path::{Path, PathBuf};

/// Directories the sandbox replaces with its own (a private /dev, a fresh /proc) or keeps
/// read-only whatever is asked (/sys): never a base or an allowed path.
const SYSTEM_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Why a base directory or an allowed path is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "{0} cannot be the base directory of a sandboxed session: the whole system would be \
         the copy-on-write view, with nothing left read-only; cd into the project's directory \
         and run again"
    )]
    RootBase(PathBuf),
    #[error(
        "{0} cannot be the base directory of a sandboxed session: the sandbox gives the command \
         its own /proc and /dev and keeps /sys read-only"
    )]
    SystemBase(PathBuf),
    #[error(
        "{base} cannot be the base directory of a sandboxed session: it lies inside the \
         session store {home}, which the sandbox hides from the command"
    )]
    BaseInStore { base: PathBuf, home: PathBuf },
    #[error(
        "the session database {db} lies inside the base directory {base}: the session would \
         show its own database to the command; keep session databases outside the project \
         (in $AGENTFS_HOME, the default)"
    )]
    DatabaseInBase { db: PathBuf, base: PathBuf },
    #[error(
        "--allow {allow} is refused: it would make the base directory {base} writable directly, \
         so the command's changes would skip the session and land on the host; allow a \
         directory inside it instead, or none"
    )]
    AllowsBase { allow: PathBuf, base: PathBuf },
    #[error(
        "--allow {allow} is refused: it would let the command write the session databases in \
         {home} ($AGENTFS_HOME), which no sandbox may change"
    )]
    AllowsStore { allow: PathBuf, home: PathBuf },
    #[error(
        "--allow {0} is refused: the sandbox gives the command its own /proc and /dev and keeps \
         /sys read-only"
    )]
    AllowsSystem(PathBuf),
    #[error(
        "--read {read} is refused: the session databases in {home} ($AGENTFS_HOME) stay hidden"
    )]
    ReadsStore { read: PathBuf, home: PathBuf },
    #[error(
        "--deny {deny} is refused: it would hide the base directory {base}, leaving the command \
         nothing to work on; deny a path inside it instead"
    )]
    DeniesBase { deny: PathBuf, base: PathBuf },
    #[error(
        "--deny {0} is refused: the sandbox gives the command its own /proc and /dev and keeps \
         /sys read-only; nothing there needs hiding"
    )]
    DeniesSystem(PathBuf),
}

fn in_system_tree(p: &Path) -> bool {
    SYSTEM_TREES.iter().any(|t| p.starts_with(t))
}

/// Checks the base directory of a sandboxed session (`agentfs run`).
pub fn check_base(base: &Path, store: &Path) -> Result<(), Refused> {
    if base == Path::new("/") {
        return Err(Refused::RootBase(base.to_path_buf()));
    }
    if in_system_tree(base) {
        return Err(Refused::SystemBase(base.to_path_buf()));
    }
    if base.starts_with(store) {
        return Err(Refused::BaseInStore {
            base: base.to_path_buf(),
            home: store.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks where the session database is: inside the base directory only if it is inside
/// the store `home`, which the sandbox hides.
pub fn check_database(db: &Path, base: &Path, home: &Path) -> Result<(), Refused> {
    if db.starts_with(base) && !db.starts_with(home) {
        return Err(Refused::DatabaseInBase {
            db: db.to_path_buf(),
            base: base.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks one path to keep writable in the sandbox of a session over `base`, with its
/// sessions in `store`. A path inside the base is fine (it is shown over the overlay).
pub fn check_allow(allow: &Path, base: &Path, store: &Path) -> Result<(), Refused> {
    if in_system_tree(allow) {
        return Err(Refused::AllowsSystem(allow.to_path_buf()));
    }
    if base.starts_with(allow) {
        return Err(Refused::AllowsBase {
            allow: allow.to_path_buf(),
            base: base.to_path_buf(),
        });
    }
    if store.starts_with(allow) || allow.starts_with(store) {
        return Err(Refused::AllowsStore {
            allow: allow.to_path_buf(),
            home: store.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks one path to hide (`--deny`): anything but the base directory, one above it, or a
/// system tree.
pub fn check_deny(deny: &Path, base: &Path) -> Result<(), Refused> {
    if in_system_tree(deny) {
        return Err(Refused::DeniesSystem(deny.to_path_buf()));
    }
    if base.starts_with(deny) {
        return Err(Refused::DeniesBase {
            deny: deny.to_path_buf(),
            base: base.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether `path` is hidden by one of `denies` (at or below it): a denied path wins over
/// an allowed or readable one.
pub fn is_denied(path: &Path, denies: &[PathBuf]) -> bool {
    denies.iter().any(|d| path.starts_with(d))
}

/// The default allows that pass [`check_allow`]: one that breaks a rule (a `~/.local` that
/// holds `$AGENTFS_HOME`, say) is left out rather than failing the run.
pub fn usable_defaults(defaults: Vec<PathBuf>, base: &Path, store: &Path) -> Vec<PathBuf> {
    defaults
        .into_iter()
        .filter(|a| check_allow(a, base, store).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn the_root_system_trees_and_the_store_are_no_base() {
        let store = p("/home/me/.agentfs");
        assert_eq!(check_base(&p("/"), &store), Err(Refused::RootBase(p("/"))));
        assert!(matches!(
            check_base(&p("/proc/1"), &store),
            Err(Refused::SystemBase(_))
        ));
        assert!(matches!(
            check_base(&p("/home/me/.agentfs/x"), &store),
            Err(Refused::BaseInStore { .. })
        ));
        // A base that holds the store is fine: the sandbox hides the store.
        assert_eq!(check_base(&p("/home/me"), &store), Ok(()));
        assert_eq!(check_base(&p("/home/me/project"), &store), Ok(()));
    }

    #[test]
    fn a_database_inside_the_base_must_be_in_the_hidden_store() {
        let (base, home) = (p("/home/me"), p("/home/me/.agentfs"));
        assert_eq!(
            check_database(&p("/home/me/.agentfs/s.db"), &base, &home),
            Ok(())
        );
        assert_eq!(check_database(&p("/var/tmp/s.db"), &base, &home), Ok(()));
        assert!(matches!(
            check_database(&p("/home/me/project/s.db"), &base, &home),
            Err(Refused::DatabaseInBase { .. })
        ));
    }

    #[test]
    fn allows_may_not_hold_the_base_or_touch_the_store() {
        let (base, store) = (p("/home/me/project"), p("/home/me/.agentfs"));
        for bad in ["/", "/home", "/home/me", "/home/me/project"] {
            assert!(
                matches!(
                    check_allow(&p(bad), &base, &store),
                    Err(Refused::AllowsBase { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["/home/me/.agentfs", "/home/me/.agentfs/s.db.run/tmp"] {
            assert!(
                matches!(
                    check_allow(&p(bad), &base, &store),
                    Err(Refused::AllowsStore { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["/proc", "/proc/sys", "/dev/sda", "/sys/kernel"] {
            assert!(
                matches!(
                    check_allow(&p(bad), &base, &store),
                    Err(Refused::AllowsSystem(_))
                ),
                "{bad}"
            );
        }
        for good in ["/home/me/project/target", "/home/me/.cache", "/var/cache/x"] {
            assert_eq!(check_allow(&p(good), &base, &store), Ok(()), "{good}");
        }
        // "/home/me/projectile" is no ancestor of "/home/me/project".
        assert_eq!(
            check_allow(&p("/home/me/projectile"), &base, &store),
            Ok(())
        );
    }

    #[test]
    fn denies_may_not_hide_the_base_and_win_over_allows() {
        let base = p("/home/me/project");
        assert_eq!(check_deny(&p("/home/me/.ssh"), &base), Ok(()));
        assert_eq!(check_deny(&p("/home/me/project/secrets"), &base), Ok(()));
        for bad in ["/", "/home", "/home/me/project"] {
            assert!(
                matches!(check_deny(&p(bad), &base), Err(Refused::DeniesBase { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            check_deny(&p("/proc/self"), &base),
            Err(Refused::DeniesSystem(_))
        ));
        let denies = vec![p("/home/me/.config/gh"), p("/home/me/.ssh")];
        assert!(is_denied(&p("/home/me/.ssh"), &denies));
        assert!(is_denied(&p("/home/me/.config/gh/hosts.yml"), &denies));
        assert!(!is_denied(&p("/home/me/.config"), &denies));
        assert!(!is_denied(&p("/home/me/.sshrc"), &denies));
    }

    #[test]
    fn a_default_allow_that_holds_the_store_is_left_out() {
        let store = p("/home/me/.local/share/agentfs");
        let kept = usable_defaults(
            vec![p("/home/me/.local"), p("/home/me/.cache")],
            &p("/home/me/project"),
            &store,
        );
        assert_eq!(kept, vec![p("/home/me/.cache")]);
    }
}
