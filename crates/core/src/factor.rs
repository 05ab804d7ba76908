//! The kinds of authentication factor, as WorkOS names them (`type` in the API, the `type`
//! column in the database).

use serde::{Deserialize, Serialize};

/// What proves a factor: an authenticator app, a code sent by SMS, or a code the client
/// delivers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// RFC 6238 time-based codes from an authenticator app.
    Totp,
    /// A one-time code sent to a phone number.
    Sms,
    /// A one-time code returned to the API client, which delivers it.
    GenericOtp,
}

impl FactorKind {
    pub const ALL: [FactorKind; 3] = [FactorKind::Totp, FactorKind::Sms, FactorKind::GenericOtp];

    /// The WorkOS name: `totp`, `sms` or `generic_otp`.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Sms => "sms",
            FactorKind::GenericOtp => "generic_otp",
        }
    }

    /// The kind of a WorkOS name; `None` for anything else.
    pub fn parse(s: &str) -> Option<FactorKind> {
        FactorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a challenge of this kind carries a one-time code the server generated (SMS
    /// and generic OTP), rather than one the authenticator app computes (TOTP).
    pub fn has_sent_code(self) -> bool {
        !matches!(self, FactorKind::Totp)
    }
}

impl std::fmt::Display for FactorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in FactorKind::ALL {
            assert_eq!(FactorKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(FactorKind::GenericOtp.as_str(), "generic_otp");
        assert_eq!(FactorKind::parse("TOTP"), None);
        assert_eq!(FactorKind::parse("email"), None);
    }
}
