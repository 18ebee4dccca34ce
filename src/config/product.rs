//! Which Atlassian product a connection's credential belongs to (`product`: Jira, Confluence or
//! Bitbucket Data Center): the product
//! decides where the identity probe goes, how its answer reads, whose words the hints use and
//! which politeness site the connection counts against. The default is Jira, so every
//! configuration written before the key existed means what it meant.

use std::fmt;

use serde::Serialize;

/// The Atlassian product a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Jira (Software, Service Management): `myself`.
    Jira,
    /// Confluence: `rest/api/user/current`; on Cloud the REST base ends in `/wiki`.
    Confluence,
    /// Bitbucket Data Center: `rest/api/latest/profile/recent/repos` and `X-AUSERNAME`.
    Bitbucket,
}

impl Product {
    /// Every product, in the order of the documentation.
    pub const ALL: [Product; 3] = [Product::Jira, Product::Confluence, Product::Bitbucket];

    /// The configuration, API and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
            Product::Bitbucket => "bitbucket",
        }
    }

    /// The product's name as its users write it.
    pub fn title(self) -> &'static str {
        match self {
            Product::Jira => "Jira",
            Product::Confluence => "Confluence",
            Product::Bitbucket => "Bitbucket",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Product, String> {
        Product::ALL
            .into_iter()
            .find(|product| product.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown product {text:?}: expected \"jira\", \"confluence\" or \"bitbucket\""
                )
            })
    }
}

/// What a hint speaks of: the product (whose screens and words) and how the credential is
/// sent (which secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialType {
    /// The product.
    pub product: Product,
    /// How the credential is sent.
    pub auth: super::AuthMethod,
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_parses_from_its_name() {
        for product in Product::ALL {
            assert_eq!(Product::parse(product.as_str()), Ok(product));
            assert_eq!(
                serde_json::to_value(product).expect("serializes"),
                serde_json::Value::from(product.as_str())
            );
        }
        let error = Product::parse("Jira").expect_err("names are lower case");
        assert!(error.contains("expected \"jira\""), "{error}");
    }
}
