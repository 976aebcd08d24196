//! Tokens and amounts: integers in base units; decimal strings only at the edges.

use alloy_primitives::{address, Address, U256};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An amount in base units of some token.
pub type Amount = u128;

/// The two tokens of the chain. MYC is the native token (fees, staking); mUSD is a dollar
/// stablecoin for payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Token {
    #[serde(rename = "MYC")]
    Myc,
    #[serde(rename = "mUSD")]
    Musd,
}

/// The asset address of MYC inside transactions: the zero address, as for a native coin.
pub const MYC_ADDRESS: Address = Address::ZERO;
/// The asset address of mUSD inside transactions (and the EIP-3009 verifying contract later).
pub const MUSD_ADDRESS: Address = address!("0x00000000000000000000000000000000006d5553");

impl Token {
    pub const ALL: [Token; 2] = [Token::Myc, Token::Musd];

    /// Decimal places of one whole token: MYC has 9, mUSD has 6.
    pub const fn decimals(self) -> u32 {
        match self {
            Token::Myc => 9,
            Token::Musd => 6,
        }
    }

    pub const fn symbol(self) -> &'static str {
        match self {
            Token::Myc => "MYC",
            Token::Musd => "mUSD",
        }
    }

    /// The address that names this token inside a signed transaction.
    pub const fn address(self) -> Address {
        match self {
            Token::Myc => MYC_ADDRESS,
            Token::Musd => MUSD_ADDRESS,
        }
    }

    pub fn from_address(address: &Address) -> Option<Token> {
        Token::ALL.into_iter().find(|t| t.address() == *address)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl FromStr for Token {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "myc" => Ok(Token::Myc),
            "musd" => Ok(Token::Musd),
            _ => Err(AmountError::UnknownToken(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("'{0}' is not an amount: use digits with at most one '.', e.g. 1.5")]
    NotANumber(String),
    #[error("'{input}' has more than {decimals} decimal places, the precision of {token}")]
    TooPrecise {
        input: String,
        decimals: u32,
        token: Token,
    },
    #[error("'{0}' is too large")]
    TooLarge(String),
    #[error("unknown token '{0}': use MYC or mUSD")]
    UnknownToken(String),
}

/// Parses a decimal string ("1.5", "0.000001", "42") into base units of `token`.
pub fn parse_amount(input: &str, token: Token) -> Result<Amount, AmountError> {
    let s = input.trim();
    let decimals = token.decimals();
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return Err(AmountError::NotANumber(input.to_string()));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals as usize {
        return Err(AmountError::TooPrecise {
            input: input.to_string(),
            decimals,
            token,
        });
    }
    let too_large = || AmountError::TooLarge(input.to_string());
    let whole: Amount = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut frac_units: Amount = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| too_large())?
    };
    frac_units *= 10u128.pow(decimals - frac.len() as u32);
    whole
        .checked_mul(10u128.pow(decimals))
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(too_large)
}

/// Why a string is not an integer of base units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegerError {
    #[error("is empty: write an integer of base units, e.g. \"1500000000\"")]
    Empty,
    #[error("'{0}' is not a decimal integer: use only the digits 0-9 (base units: no sign, decimal point, spaces or exponent)")]
    NotDecimal(String),
    #[error(
        "'{0}' is not a 0x-hex integer: give at least one hex digit after 0x, and only 0-9, a-f"
    )]
    NotHex(String),
    #[error("'{0}' does not fit in 256 bits")]
    TooLarge(String),
}

/// Parses a decimal integer of base units ("1500000000"): one or more ASCII digits, nothing
/// else. Transactions and node answers carry 256-bit integers as decimal strings, and the lenient
/// `U256::from_str_radix` reads "" as 0 (and skips `_`), which would turn a malformed amount into
/// a valid-looking zero; every decimal string of an integer is read here instead.
pub fn parse_decimal_u256(input: &str) -> Result<U256, IntegerError> {
    if input.is_empty() {
        return Err(IntegerError::Empty);
    }
    if !input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntegerError::NotDecimal(input.to_string()));
    }
    U256::from_str_radix(input, 10).map_err(|_| IntegerError::TooLarge(input.to_string()))
}

/// Parses a 256-bit integer written as `0x` followed by one or more hex digits, as strictly as
/// [`parse_decimal_u256`] (the lenient parser reads a bare "0x" as 0).
pub fn parse_hex_u256(input: &str) -> Result<U256, IntegerError> {
    let digits = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| IntegerError::NotHex(input.to_string()))?;
    U256::from_str_radix(digits, 16).map_err(|_| IntegerError::TooLarge(input.to_string()))
}

/// Formats base units of `token` as a decimal string with no trailing zeros ("1.5", "42").
pub fn format_amount(amount: Amount, token: Token) -> String {
    let unit = 10u128.pow(token.decimals());
    let whole = amount / unit;
    let frac = amount % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{:0width$}", frac, width = token.decimals() as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimals() {
        assert_eq!(parse_amount("1.5", Token::Myc), Ok(1_500_000_000));
        assert_eq!(parse_amount("0.000001", Token::Musd), Ok(1));
        assert_eq!(parse_amount("42", Token::Musd), Ok(42_000_000));
        assert_eq!(parse_amount(".5", Token::Musd), Ok(500_000));
        assert_eq!(parse_amount("1.50000000000", Token::Myc), Ok(1_500_000_000));
        assert!(matches!(
            parse_amount("0.0000001", Token::Musd),
            Err(AmountError::TooPrecise { .. })
        ));
        assert!(matches!(
            parse_amount("1,5", Token::Musd),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("-1", Token::Musd),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount(".", Token::Musd),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("", Token::Musd),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("999999999999999999999999999999999", Token::Myc),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn integers_of_base_units_are_read_strictly() {
        assert_eq!(parse_decimal_u256("0"), Ok(U256::ZERO));
        assert_eq!(
            parse_decimal_u256("1500000000"),
            Ok(U256::from(1_500_000_000u64))
        );
        assert_eq!(parse_decimal_u256("007"), Ok(U256::from(7u8)));
        assert_eq!(parse_decimal_u256(&U256::MAX.to_string()), Ok(U256::MAX));
        assert_eq!(parse_decimal_u256(""), Err(IntegerError::Empty));
        for bad in [" 1", "1 ", "+1", "-1", "1.0", "1e9", "1_000", "0x10", "１"] {
            assert_eq!(
                parse_decimal_u256(bad),
                Err(IntegerError::NotDecimal(bad.to_string())),
                "{bad:?}"
            );
        }
        let too_large = format!("{}0", U256::MAX);
        assert_eq!(
            parse_decimal_u256(&too_large),
            Err(IntegerError::TooLarge(too_large.clone()))
        );
        assert!(IntegerError::Empty.to_string().contains("base units"));

        assert_eq!(parse_hex_u256("0x10"), Ok(U256::from(16u8)));
        assert_eq!(parse_hex_u256("0XfF"), Ok(U256::from(255u8)));
        for bad in ["0x", "0x_1", "0xg", "10", "0x 1"] {
            assert_eq!(
                parse_hex_u256(bad),
                Err(IntegerError::NotHex(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_hex_u256(&format!("0x1{}", "0".repeat(64))),
            Err(IntegerError::TooLarge(_))
        ));
    }

    #[test]
    fn tokens_by_name_and_address() {
        assert_eq!("musd".parse::<Token>(), Ok(Token::Musd));
        assert_eq!("MYC".parse::<Token>(), Ok(Token::Myc));
        assert!("eth".parse::<Token>().is_err());
        assert_eq!(Token::from_address(&MUSD_ADDRESS), Some(Token::Musd));
        assert_eq!(Token::from_address(&Address::repeat_byte(1)), None);
    }

    proptest! {
        #[test]
        fn any_u256_round_trips_through_its_decimal_and_hex_strings(limbs in any::<[u64; 4]>()) {
            let value = U256::from_limbs(limbs);
            prop_assert_eq!(parse_decimal_u256(&value.to_string()), Ok(value));
            prop_assert_eq!(parse_hex_u256(&format!("{value:#x}")), Ok(value));
        }

        #[test]
        fn format_then_parse_round_trips(amount in any::<u64>(), musd in any::<bool>()) {
            let token = if musd { Token::Musd } else { Token::Myc };
            let amount = amount as Amount;
            prop_assert_eq!(parse_amount(&format_amount(amount, token), token), Ok(amount));
        }
    }
}
