//! The client's terminal: raw mode while a program runs under a remote pseudo-terminal
//! (restored by a guard on every way out: return, error, panic; the caller handles the
//! signals that would end the process without unwinding), and its window size.

use std::io;

use super::wire::Winsize;

/// Standard input's descriptor: the terminal the user types on.
const STDIN: i32 = 0;

/// True if standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(STDIN) == 1 }
}

/// The terminal's size (standard input's, else standard output's); None if neither is a
/// terminal.
pub fn size() -> Option<Winsize> {
    for fd in [STDIN, 1] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into a live struct.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some(Winsize {
                rows: ws.ws_row,
                cols: ws.ws_col,
            });
        }
    }
    None
}

/// Standard input's terminal in raw mode; dropping it puts back the mode it had.
pub struct RawMode {
    /// The settings to restore.
    saved: libc::termios,
}

impl RawMode {
    /// Puts standard input's terminal in raw mode (no echo, no line editing, no signals from
    /// keys: ^C and ^Z go to the remote program). None if standard input is no terminal.
    pub fn enter() -> io::Result<Option<RawMode>> {
        if !stdin_is_terminal() {
            return Ok(None);
        }
        // SAFETY: a zeroed termios is a valid value to be overwritten by tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into a live termios.
        if unsafe { libc::tcgetattr(STDIN, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the struct it is given; tcsetattr reads a live termios.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(STDIN, libc::TCSAFLUSH, &raw) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter` on the same descriptor.
        unsafe { libc::tcsetattr(STDIN, libc::TCSADRAIN, &self.saved) };
    }
}
