//! The closed sets rappel's tables and command line name (DESIGN §4, §9):
//! each an enum with one stable text form, used in SQL, JSON, flags and
//! messages alike. A value read from the database that is not one of them
//! is a conversion error naming it, never a silent default.

mod channel;
mod job;
mod kind;
pub mod planned;
mod status;
pub mod tally;

pub use channel::Channel;
pub use job::{Job, Run, RunMode};
pub use kind::Kind;
pub use status::{DeliveryStatus, ErrorClass};

/// Implements `Display`, `FromStr` and serde for an
/// enum with `as_str(self) -> &'static str` and `ALL`, by its text form
/// (the SQL form is `store::sql`).
macro_rules! text_form {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;

            /// The value whose text form is `s` exactly. Errors: a line
            /// naming `s` and the values allowed.
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = <$t>::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{s:?} is not a {} (expected {})", $what, allowed.join(", "))
                    })
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_form;
