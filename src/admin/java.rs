//! Java's text formats, reproduced where ZooKeeper's replies print a Java value as Java
//! would: `Double.toString`, `BigDecimal` half-up rounding, `Date.toString()` and
//! `InetSocketAddress.toString()`. Pure functions of their argument.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// `new BigDecimal(x).setScale(4, HALF_UP).doubleValue()`, computed on the exact binary
/// value of `x` (a plain `(x * 1e4).round()` rounds 0.00015 the wrong way).
pub(super) fn round_half_up_4(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let magnitude = x.abs();
    let bits = magnitude.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exp) = if biased_exp == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased_exp - 1075)
    };
    if exp >= 0 {
        return x; // an integer: nothing to round
    }
    // magnitude * 10^4 = mantissa * 10^4 / 2^shift, with mantissa * 10^4 < 2^67.
    let shift = exp.unsigned_abs();
    let scaled = u128::from(mantissa) * 10_000;
    let units = if shift >= 68 {
        0 // below 0.5e-4
    } else {
        let quotient = scaled >> shift;
        let remainder = scaled & ((1u128 << shift) - 1);
        quotient + u128::from(remainder >= 1u128 << (shift - 1))
    };
    (units as f64 / 10_000.0).copysign(x)
}

/// Java's `Double.toString`: `0.0`, `1.5`, `0.3333`, `5.0E-4`, `1.0E7`.
pub(super) fn java_double(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".to_string()
        } else if x > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        };
    }
    let a = x.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').expect("LowerExp has an exponent");
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

/// Java's `Date.toString()` in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date_utc(epoch_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Java's `InetSocketAddress.toString()` for an accepted socket: `/127.0.0.1:5000`,
/// `/[0:0:0:0:0:0:0:1]:5000` (IPv6 uncompressed, as `Inet6Address.getHostAddress`).
pub(super) fn write_java_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            let _ = write!(out, "/{ip}:{}", addr.port());
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let _ = write!(
                out,
                "/[{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}]:{}",
                s[0],
                s[1],
                s[2],
                s[3],
                s[4],
                s[5],
                s[6],
                s[7],
                addr.port()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_the_binary_value() {
        // 3/20000 is 0.000149999... as a double: HALF_UP keeps 0.0001.
        assert_eq!(round_half_up_4(3.0 / 20000.0), 0.0001);
        // 1/20000 is 0.0000500000...0239 as a double: rounds up.
        assert_eq!(round_half_up_4(1.0 / 20000.0), 0.0001);
        assert_eq!(round_half_up_4(2.0 / 3.0), 0.6667);
        assert_eq!(round_half_up_4(0.125), 0.125);
        assert_eq!(round_half_up_4(1.00005), 1.0001);
        assert_eq!(round_half_up_4(1e-9), 0.0);
        assert_eq!(round_half_up_4(12345678.0), 12345678.0);
        assert_eq!(round_half_up_4(-2.0 / 3.0), -0.6667);
    }

    #[test]
    fn java_double_format() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(0.3333), "0.3333");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(1234567.5), "1234567.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12345678.9), "1.23456789E7");
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_735_689_599_999),
            "Tue Dec 31 23:59:59 UTC 2024"
        );
        assert_eq!(
            java_date_utc(4_102_444_800_000),
            "Fri Jan 01 00:00:00 UTC 2100"
        );
    }
}
