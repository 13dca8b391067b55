//! The secure session of `execnet serve`: the Noise protocol's pre-shared-key handshake
//! `Noise_NNpsk0_25519_ChaChaPoly_SHA256`, then every byte in both directions encrypted
//! and integrity-protected. The design and the wire format are described in the docs of
//! [`crate::serve`].

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use snow::{Builder, HandshakeState, StatelessTransportState};

/// The Noise protocol name, as snow parses it.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";

/// The line the server sends as soon as a connection is accepted.
pub const GREETING: &str = "EXECNET-AUTH 2 Noise_NNpsk0_25519_ChaChaPoly_SHA256\n";

/// Bound into the handshake (with the greeting) so that keys of this protocol are never
/// those of another use of the same secret.
pub const PROLOGUE_CONTEXT: &[u8] = b"execnet-rs serve session 1\n";

/// Shortest secret accepted, in bytes (after trailing whitespace is removed).
pub const MIN_SECRET_LEN: usize = 16;

/// Largest secret file read, in bytes: a secret is a short random key, and a path given
/// by mistake (a log, a device) must not be read whole.
pub const MAX_SECRET_FILE: u64 = 4096;

/// Context of the key derivation from the secret.
const PSK_CONTEXT: &[u8] = b"execnet-rs serve psk 1\0";

/// Longest Noise message.
const MAX_MESSAGE: usize = 65535;
/// Authentication tag added to every encrypted payload.
const TAG: usize = 16;
/// Most plaintext in one transport frame.
const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG;
/// Length of either handshake message with its empty payload: a 32-byte ephemeral key
/// and the tag of the encrypted empty payload.
const HANDSHAKE_MESSAGE: usize = 32 + TAG;
/// Longest greeting line read by the client.
const MAX_LINE: usize = 200;

/// A shared secret, checked for length and turned into the handshake's pre-shared key.
/// Its `Debug` does not show the key.
#[derive(Clone)]
pub struct Secret {
    psk: [u8; 32],
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Takes the secret's bytes; fewer than 16 is an error.
    pub fn new(secret: &[u8]) -> io::Result<Secret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the secret is {} bytes long; at least {MIN_SECRET_LEN} are required \
                     (make one with `head -c 32 /dev/urandom | base64`)",
                    secret.len()
                ),
            ));
        }
        let mut h = Sha256::new();
        h.update(PSK_CONTEXT);
        h.update(secret);
        Ok(Secret {
            psk: h.finalize().into(),
        })
    }

    /// Reads a secret file (a regular file of at most 4 KiB that only its owner may read)
    /// and checks it with [`Secret::new`].
    pub fn from_file(path: &Path) -> io::Result<Secret> {
        let bytes = read_secret(path)?;
        Secret::new(&bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("secret file {}: {e}", path.display())))
    }
}

/// Reads a secret file: a regular file, accessible by its owner only, of at most
/// [`MAX_SECRET_FILE`] bytes; returns its content without trailing whitespace.
pub fn read_secret(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open secret file {shown}: {e}")))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("secret file {shown} is not a regular file"),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "secret file {shown} is accessible by group or others (mode {mode:03o}); \
                 expected 600 or stricter: run `chmod 600 {shown}`"
            ),
        ));
    }
    let mut text = Vec::new();
    file.take(MAX_SECRET_FILE + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "secret file {shown} is larger than {MAX_SECRET_FILE} bytes; expected a short random key"
            ),
        ));
    }
    while text.last().is_some_and(|b| b.is_ascii_whitespace()) {
        text.pop();
    }
    if text.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("secret file {shown} is empty"),
        ));
    }
    Ok(text)
}

/// Why the server refused a connection (nothing was started for it).
#[derive(Debug)]
pub enum Refusal {
    /// The client's handshake did not decrypt: it does not hold the secret.
    WrongSecret,
    /// The handshake completed but the first encrypted frame did not decrypt: a replayed
    /// or forged handshake, or a party on the path.
    Unconfirmed(String),
    /// The client did not speak this protocol.
    Malformed(String),
    /// The connection failed or timed out during the handshake.
    Io(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongSecret => f.write_str("wrong secret"),
            Refusal::Unconfirmed(why) => write!(
                f,
                "handshake not confirmed (replayed, forged, or altered on the path): {why}"
            ),
            Refusal::Malformed(why) => write!(f, "not an authenticating execnet client: {why}"),
            Refusal::Io(e) if is_timeout(e) => f.write_str("handshake timed out"),
            Refusal::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the client closed the connection during the handshake")
            }
            Refusal::Io(e) => write!(f, "connection failed during the handshake: {e}"),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn noise_error(e: snow::Error) -> io::Error {
    io::Error::other(format!("noise: {e}"))
}

fn prologue() -> Vec<u8> {
    let mut prologue = PROLOGUE_CONTEXT.to_vec();
    prologue.extend_from_slice(GREETING.as_bytes());
    prologue
}

fn handshake_state(secret: &Secret, initiator: bool) -> io::Result<HandshakeState> {
    let prologue = prologue();
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| noise_error(e))?;
    let b = Builder::new(params)
        .psk(0, &secret.psk)
        .and_then(|b| b.prologue(&prologue))
        .map_err(noise_error)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .map_err(noise_error)
}

/// Writes one Noise message with its length prefix.
fn write_message(w: &mut impl Write, message: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    w.write_all(&framed)?;
    w.flush()
}

/// Reads the 2-byte length of the next Noise message; `None` at a clean end of stream.
fn read_length(r: &mut impl Read) -> io::Result<Option<usize>> {
    let mut len = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection cut inside an encrypted frame's length",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(u16::from_be_bytes(len) as usize))
}

/// The server's side of the handshake. On success the session is established, but the
/// server must still see one frame decrypt ([`SecureReader::confirm`]) before it trusts
/// the peer: the client's first message alone can be a replay.
pub fn accept<S: Read + Write>(stream: &mut S, secret: &Secret) -> Result<Session, Refusal> {
    let mut hs = handshake_state(secret, false).map_err(Refusal::Io)?;
    stream
        .write_all(GREETING.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(Refusal::Io)?;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).map_err(Refusal::Io)?;
    let len = u16::from_be_bytes(head) as usize;
    if len != HANDSHAKE_MESSAGE {
        return Err(Refusal::Malformed(if head[0] == b'\'' || head[0] == b'"' {
            "it sent a plaintext bootstrap (a Python master? only --insecure-no-auth serves those)"
                .into()
        } else {
            format!(
                "expected a {HANDSHAKE_MESSAGE}-byte handshake message, found the length prefix \
                 {len} (bytes {:02x} {:02x})",
                head[0], head[1]
            )
        }));
    }
    let mut message = [0u8; HANDSHAKE_MESSAGE];
    stream.read_exact(&mut message).map_err(Refusal::Io)?;
    let mut payload = [0u8; HANDSHAKE_MESSAGE];
    hs.read_message(&message, &mut payload)
        .map_err(|_| Refusal::WrongSecret)?;
    let mut reply = [0u8; HANDSHAKE_MESSAGE];
    let n = hs
        .write_message(&[], &mut reply)
        .map_err(|e| Refusal::Io(noise_error(e)))?;
    write_message(stream, &reply[..n]).map_err(Refusal::Io)?;
    Session::from_handshake(hs).map_err(Refusal::Io)
}

/// The client's side of the handshake; an error of kind `PermissionDenied` when the
/// server does not accept the secret (or fails to prove that it holds it).
pub fn connect<S: Read + Write>(stream: &mut S, secret: &Secret) -> io::Result<Session> {
    let greeting = read_line(stream).map_err(|e| {
        if is_timeout(&e) {
            io::Error::new(
                e.kind(),
                "the server sent no authentication greeting (does it run with --insecure-no-auth, \
                 or is it not an execnet server?)",
            )
        } else {
            io::Error::new(
                e.kind(),
                format!("reading the server's authentication greeting: {e}"),
            )
        }
    })?;
    if format!("{greeting}\n") != GREETING {
        let hint = if greeting.starts_with("EXECNET-AUTH 1 ") {
            " (an older server with challenge-response authentication: upgrade it)"
        } else {
            ""
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the server did not offer {NOISE_PARAMS}: it sent {:?}{hint}",
                greeting.chars().take(80).collect::<String>()
            ),
        ));
    }
    let mut hs = handshake_state(secret, true)?;
    let mut first = [0u8; HANDSHAKE_MESSAGE];
    let n = hs.write_message(&[], &mut first).map_err(noise_error)?;
    write_message(stream, &first[..n])?;
    let refused = || {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the server closed the connection during the handshake: wrong secret",
        )
    };
    let len = match read_length(stream) {
        Ok(Some(len)) => len,
        Ok(None) => return Err(refused()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(refused()),
        Err(e) => return Err(e),
    };
    if len != HANDSHAKE_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the server's handshake message is {len} bytes, expected {HANDSHAKE_MESSAGE}"),
        ));
    }
    let mut reply = [0u8; HANDSHAKE_MESSAGE];
    stream.read_exact(&mut reply)?;
    let mut payload = [0u8; HANDSHAKE_MESSAGE];
    hs.read_message(&reply, &mut payload).map_err(|_| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the server's handshake did not decrypt: it does not hold this secret",
        )
    })?;
    Session::from_handshake(hs)
}

/// Reads one line byte by byte (nothing past the newline is consumed), at most
/// `MAX_LINE` bytes.
fn read_line(r: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if r.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&line)
                ),
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no newline in the first {MAX_LINE} bytes"),
            ));
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// An established session: split it into the one reader and the one writer it may have
/// (two writers would reuse nonces).
pub struct Session {
    state: Arc<StatelessTransportState>,
}

impl Session {
    fn from_handshake(hs: HandshakeState) -> io::Result<Session> {
        Ok(Session {
            state: Arc::new(hs.into_stateless_transport_mode().map_err(noise_error)?),
        })
    }

    /// Wraps the two halves of the connection.
    pub fn split<R: Read, W: Write>(
        self,
        input: R,
        output: W,
    ) -> (SecureReader<R>, SecureWriter<W>) {
        (
            SecureReader {
                inner: input,
                state: self.state.clone(),
                nonce: 0,
                ciphertext: vec![0u8; MAX_MESSAGE],
                plain: vec![0u8; MAX_MESSAGE],
                start: 0,
                end: 0,
                failed: None,
            },
            SecureWriter {
                inner: output,
                state: self.state,
                nonce: 0,
                frame: vec![0u8; 2 + MAX_MESSAGE],
            },
        )
    }
}

/// Decrypts the session's incoming frames. Any frame that fails authentication ends the
/// stream for good with an `InvalidData` error (and so does a stream cut mid-frame).
pub struct SecureReader<R> {
    inner: R,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    ciphertext: Vec<u8>,
    plain: Vec<u8>,
    start: usize,
    end: usize,
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> SecureReader<R> {
    /// Reads frames until one carries plaintext and keeps it for the next `read`: proof
    /// that the peer holds the session keys. `Ok(false)` when the stream ended first.
    pub fn confirm(&mut self) -> io::Result<bool> {
        while self.start == self.end {
            if !self.next_frame()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The wrapped reader, to adjust (reading from it directly would break the stream).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn fail(&mut self, kind: io::ErrorKind, why: String) -> io::Error {
        self.failed = Some((kind, why.clone()));
        io::Error::new(kind, why)
    }

    /// Reads and decrypts one frame; `false` at a clean end of stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        if let Some((kind, why)) = &self.failed {
            return Err(io::Error::new(*kind, why.clone()));
        }
        let len = match read_length(&mut self.inner) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(self.fail(e.kind(), e.to_string()))
            }
            Err(e) => return Err(e),
        };
        if len < TAG {
            return Err(self.fail(
                io::ErrorKind::InvalidData,
                format!(
                    "encrypted frame {} is {len} bytes, shorter than its {TAG}-byte tag",
                    self.nonce
                ),
            ));
        }
        if let Err(e) = self.inner.read_exact(&mut self.ciphertext[..len]) {
            let why = format!(
                "connection cut inside encrypted frame {} ({len} bytes): {e}",
                self.nonce
            );
            return Err(self.fail(io::ErrorKind::UnexpectedEof, why));
        }
        match self
            .state
            .read_message(self.nonce, &self.ciphertext[..len], &mut self.plain)
        {
            Ok(n) => {
                self.nonce += 1;
                self.start = 0;
                self.end = n;
                Ok(true)
            }
            Err(_) => {
                let why = format!(
                    "encrypted frame {} failed authentication: altered in transit, replayed, \
                     or not sent by the holder of the secret",
                    self.nonce
                );
                Err(self.fail(io::ErrorKind::InvalidData, why))
            }
        }
    }
}

impl<R: Read> Read for SecureReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.start == self.end {
            if !self.next_frame()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.plain[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// Encrypts everything written into frames of at most 65519 bytes of plaintext. Each
/// `write` sends its frame at once (nothing waits for `flush`), so it works under any
/// caller's flushing discipline.
pub struct SecureWriter<W> {
    inner: W,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    frame: Vec<u8>,
}

impl<W: Write> Write for SecureWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_PLAINTEXT);
        let len = self
            .state
            .write_message(self.nonce, &buf[..n], &mut self.frame[2..])
            .map_err(noise_error)?;
        self.nonce += 1;
        self.frame[..2].copy_from_slice(&(len as u16).to_be_bytes());
        self.inner.write_all(&self.frame[..2 + len])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn secret(text: &str) -> Secret {
        Secret::new(text.as_bytes()).unwrap()
    }

    /// Runs both sides of a handshake over loopback.
    fn pair(
        server: Secret,
        client: Secret,
    ) -> (
        Result<Session, Refusal>,
        io::Result<Session>,
        TcpStream,
        TcpStream,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let r = accept(&mut s, &server);
            if r.is_err() {
                // As the server does: a refused connection is closed at once.
                s.shutdown(std::net::Shutdown::Both).unwrap();
            }
            (r, s)
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let client = connect(&mut c, &client);
        if client.is_err() {
            drop(c.shutdown(std::net::Shutdown::Both));
        }
        let (server, s) = t.join().unwrap();
        (server, client, s, c)
    }

    #[test]
    fn right_secret_carries_data_both_ways() {
        let (s, c, ss, cs) = pair(secret("0123456789abcdef"), secret("0123456789abcdef"));
        let (mut sr, mut sw) = s.unwrap().split(ss.try_clone().unwrap(), ss);
        let (mut cr, mut cw) = c.unwrap().split(cs.try_clone().unwrap(), cs);
        // Longer than one frame, so it is cut and reassembled.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expect = big.clone();
        let t = std::thread::spawn(move || {
            cw.write_all(&big).unwrap();
            drop(cw);
        });
        assert!(sr.confirm().unwrap());
        let mut got = vec![0u8; expect.len()];
        sr.read_exact(&mut got).unwrap();
        assert_eq!(got, expect);
        t.join().unwrap();
        sw.write_all(b"back").unwrap();
        let mut four = [0u8; 4];
        cr.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"back");
    }

    #[test]
    fn wrong_secret_refused_on_both_sides() {
        let (s, c, _, _) = pair(secret("0123456789abcdef"), secret("0123456789abcdeX"));
        assert!(matches!(s, Err(Refusal::WrongSecret)), "{:?}", s.err());
        let e = c.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    }

    #[test]
    fn altered_frame_fails_for_good() {
        let (s, c, _ss, _cs) = pair(secret("0123456789abcdef"), secret("0123456789abcdef"));
        let (_cr, mut cw) = c.unwrap().split(io::empty(), Vec::new());
        cw.write_all(b"hello").unwrap();
        let mut frame = cw.inner.clone();
        frame[2 + 3] ^= 0x01;
        let (mut sr, _sw) = s.unwrap().split(&frame[..], io::sink());
        let e = sr.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("failed authentication"), "{e}");
        let again = sr.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
    }

    #[test]
    fn short_secret_refused() {
        let e = Secret::new(b"short").unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
    }
}
