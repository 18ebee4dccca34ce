//! Why probing of a connection stopped: the two stops that protect an account from Jira's
//! CAPTCHA lock, which only `credwatch resume` lifts (a new password is tried only while its
//! login account has budget left).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::config::Product;
use crate::probe::hints::in_words_of;

/// Why probing of a connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pause {
    /// Two failed Basic logins in a row.
    FailedLogins,
    /// The account is CAPTCHA-locked.
    Locked,
}

/// The pauses' hints, worded for every product.
static HINTS: LazyLock<HashMap<(Pause, Product), String>> = LazyLock::new(|| {
    let mut table = HashMap::new();
    for pause in [Pause::FailedLogins, Pause::Locked] {
        for product in Product::ALL {
            table.insert((pause, product), in_words_of(pause.template(), product));
        }
    }
    table
});

impl Pause {
    /// What the operator reads in place of the reason's usual hint, in the words of the
    /// connection's product.
    pub fn hint(self, product: Product) -> &'static str {
        HINTS.get(&(self, product)).map_or("", String::as_str)
    }

    fn template(self) -> &'static str {
        match self {
            Pause::FailedLogins => {
                "credwatch stopped probing after 2 failed logins in a row for this login account ({product} counts them per user, whichever connection sent them), so as never to trip {product}'s CAPTCHA lock. A new password does not reset {product}'s count, so credwatch does not try it on its own: fix the password (or its file), then log in once through {product}'s login page in a browser or have an admin reset the failed-login count, and run `credwatch resume NAME`: every connection of the account is probed again at once"
            }
            Pause::Locked => {
                "the account is locked behind a CAPTCHA and credwatch stopped probing it: log in through the browser or have an admin reset the failed-login count, then run `credwatch resume NAME` (or change the password) and credwatch probes again at once"
            }
        }
    }

    /// A short label for logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Pause::FailedLogins => "failed_logins",
            Pause::Locked => "locked",
        }
    }
}
