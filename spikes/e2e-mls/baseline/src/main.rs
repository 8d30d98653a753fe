//! rust-client's shell without MLS: the size baseline for the binary-size figure.
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use std::io::{BufRead, Write};

fn main() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match B64.decode(line.trim()) {
            Ok(bytes) => format!("ok {}", B64.encode(bytes)),
            Err(e) => format!("err {e}"),
        };
        writeln!(stdout.lock(), "{answer}")?;
    }
    Ok(())
}
