//! Authentication for `execnet serve`: a challenge-response over a shared secret, so
//! that the secret itself never crosses the wire.
//!
//! 1. The server sends `EXECNET-AUTH 1 <64 hex digits: a fresh random nonce>\n`.
//! 2. The client answers `<64 hex digits>\n`: HMAC-SHA256 keyed with the secret, over
//!    `execnet-auth-1:` followed by the nonce's hex text.
//! 3. The server compares in constant time and answers `OK\n`, or closes the connection.
//!
//! Then the ordinary bootstrap follows. A replayed answer is useless: every connection
//! gets a new nonce.

use std::io::{self, Read, Write};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const GREETING: &str = "EXECNET-AUTH 1 ";
const CONTEXT: &[u8] = b"execnet-auth-1:";
/// Longest line read during the exchange (a peer cannot make us buffer more).
const MAX_LINE: usize = 200;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

fn mac(secret: &[u8], nonce_hex: &str) -> io::Result<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "unusable secret"))?;
    m.update(CONTEXT);
    m.update(nonce_hex.as_bytes());
    Ok(m)
}

/// Reads one line byte by byte (nothing beyond the newline is consumed, so the bootstrap
/// line that follows stays in the socket for the worker).
pub fn read_line(r: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if r.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not text"))
}

/// Reads a secret file: its content without trailing whitespace; empty is an error.
pub fn read_secret(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let mut text = std::fs::read(path)?;
    while text.last().is_some_and(|b| b.is_ascii_whitespace()) {
        text.pop();
    }
    if text.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("secret file {} is empty", path.display()),
        ));
    }
    Ok(text)
}

/// Why a client was refused.
#[derive(Debug)]
pub enum Refusal {
    /// It answered with the wrong proof.
    WrongSecret,
    /// It sent no proof (or not one of the right form).
    NoAnswer(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongSecret => f.write_str("wrong secret"),
            Refusal::NoAnswer(why) => write!(f, "no valid answer to the challenge ({why})"),
        }
    }
}

/// The server's side: challenge, verify, answer `OK`.
pub fn challenge<S: Read + Write>(stream: &mut S, secret: &[u8]) -> Result<(), Refusal> {
    let mut nonce = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .map_err(|e| Refusal::NoAnswer(format!("no randomness: {e}")))?;
    let nonce_hex = hex(&nonce);
    stream
        .write_all(format!("{GREETING}{nonce_hex}\n").as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| Refusal::NoAnswer(e.to_string()))?;
    let answer = read_line(stream).map_err(|e| Refusal::NoAnswer(e.to_string()))?;
    let proof = unhex(answer.trim()).ok_or_else(|| {
        Refusal::NoAnswer(format!("{:?}", answer.chars().take(40).collect::<String>()))
    })?;
    let m = mac(secret, &nonce_hex).map_err(|e| Refusal::NoAnswer(e.to_string()))?;
    m.verify_slice(&proof).map_err(|_| Refusal::WrongSecret)?;
    stream
        .write_all(b"OK\n")
        .and_then(|_| stream.flush())
        .map_err(|e| Refusal::NoAnswer(e.to_string()))
}

/// The client's side: answer the challenge with `secret`; `Err` when the server does not
/// accept it (or speaks no challenge at all).
pub fn respond<S: Read + Write>(stream: &mut S, secret: &[u8]) -> io::Result<()> {
    let greeting = read_line(stream)?;
    let nonce_hex = greeting.strip_prefix(GREETING).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server did not send an authentication challenge: {greeting:?}"),
        )
    })?;
    let proof = mac(secret, nonce_hex)?.finalize().into_bytes();
    stream.write_all(format!("{}\n", hex(&proof)).as_bytes())?;
    stream.flush()?;
    match read_line(stream) {
        Ok(line) if line == "OK" => Ok(()),
        Ok(line) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("server answered {line:?}"),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "server closed the connection: wrong secret",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(
        server_secret: &'static [u8],
        client_secret: &'static [u8],
    ) -> (Result<(), Refusal>, io::Result<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            challenge(&mut s, server_secret)
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let client = respond(&mut c, client_secret);
        drop(c);
        (t.join().unwrap(), client)
    }

    #[test]
    fn right_secret_passes_wrong_fails() {
        let (s, c) = pair(b"s3cret", b"s3cret");
        assert!(s.is_ok() && c.is_ok());
        let (s, c) = pair(b"s3cret", b"guess");
        assert!(matches!(s, Err(Refusal::WrongSecret)));
        assert!(c.is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])).unwrap(), [0, 1, 254, 255]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
