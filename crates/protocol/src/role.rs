//! The two roles a client can take on a topic.

use std::fmt;
use std::str::FromStr;

/// What a client is on its topic: it either publishes to it or subscribes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends binary frames that the server fans out to the topic's subscribers.
    Publisher,
    /// Receives every message published to the topic after it joined.
    Subscriber,
}

impl Role {
    /// The value of the role header or query parameter for this role.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role value that is neither `publisher` nor `subscriber` (values are exact, as in Go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid role {0:?}: expected \"publisher\" or \"subscriber\"")]
pub struct InvalidRole(pub String);

impl FromStr for Role {
    type Err = InvalidRole;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "publisher" => Ok(Role::Publisher),
            "subscriber" => Ok(Role::Subscriber),
            other => Err(InvalidRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_values_only() {
        assert_eq!("publisher".parse(), Ok(Role::Publisher));
        assert_eq!("subscriber".parse(), Ok(Role::Subscriber));
        assert!("Publisher".parse::<Role>().is_err());
        assert!(" subscriber".parse::<Role>().is_err());
        assert!("".parse::<Role>().is_err());
    }

    #[test]
    fn round_trips_through_as_str() {
        for role in [Role::Publisher, Role::Subscriber] {
            assert_eq!(role.as_str().parse(), Ok(role));
        }
    }
}
