//! The few operating-system facts and facilities relay-bench needs beyond
//! sockets: its own CPU time, another process's CPU time, RSS and open
//! descriptors (from `/proc`), the open-file limit, a signal, and a
//! periodic timer precise enough to pace messages every few microseconds.
//!
//! Public because the workspace's tests need the same facts (the relay's
//! CPU ticks and memory, more descriptors, a child with fewer, SIGTERM):
//! they take them from here, so no test holds `unsafe` code of its own.
//!
//! Linux only, like the relay's target machines. Each `unsafe` block is one
//! libc call on memory this module owns.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// CPU time (user + system) this process has used so far.
pub fn own_cpu_time() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed value we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time (user + system) process `pid` has used, from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let ticks = process_cpu_ticks(pid)?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

/// CPU time (user + system) process `pid` has used, in the kernel's clock
/// ticks (`_SC_CLK_TCK` a second, usually 100), from `/proc/PID/stat`.
pub fn process_cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))?;
    // utime and stime are fields 14 and 15; `after_name` starts at field 3.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut ticks = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))
    };
    Ok(ticks()? + ticks()?)
}

/// Resident set size of process `pid` in bytes, from `/proc/PID/status`.
pub fn process_rss(pid: u32) -> io::Result<u64> {
    Ok(process_status_kib(pid, "VmRSS")? * 1024)
}

/// One `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn process_status_kib(pid: u32, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/PID/status")))
}

/// File descriptors process `pid` has open.
pub fn process_open_fds(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Raises this process's open-file limit to its hard limit and returns the
/// new soft limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = open_file_limit()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        set_open_file_limit(&limit)?;
    }
    Ok(limit.rlim_cur)
}

/// Raises this process's open-file limit to at least `wanted`, the hard
/// limit too where the process may (as root), and otherwise as far as the
/// hard limit allows. Returns the new soft limit, which may still fall
/// short of `wanted`.
pub fn raise_open_file_limit_to(wanted: u64) -> io::Result<u64> {
    let mut limit = open_file_limit()?;
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = wanted;
    limit.rlim_max = limit.rlim_max.max(wanted);
    if set_open_file_limit(&limit).is_err() {
        // Raising the hard limit needs privilege.
        return raise_open_file_limit();
    }
    Ok(limit.rlim_cur)
}

/// Makes `command`'s process start with at most `limit` open files (soft
/// and hard), set between fork and exec.
pub fn limit_open_files_of(command: &mut Command, limit: u64) {
    let limit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe,
    // on a value it owns; it allocates nothing and takes no lock, as code
    // between fork and exec must not.
    unsafe {
        command.pre_exec(move || set_open_file_limit(&limit));
    }
}

fn open_file_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the value we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

fn set_open_file_limit(limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads one `rlimit` we lend it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGTERM to process `pid`.
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGHUP to process `pid` (a relay rereads its files).
pub fn hang_up(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel not to round this thread's timeouts up by the default
/// 50 µs of slack: paced sends must leave on time.
pub fn tighten_timer_slack() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Asks the kernel to stamp every packet this socket receives with the time
/// it arrived (`SO_TIMESTAMPNS`), for [`recv_timestamped`].
pub fn enable_receive_timestamps(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int we own, of the size we pass.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads from `socket` like `read`, and returns with the byte count when
/// (wall-clock nanoseconds since the epoch) the kernel received the last
/// packet read, if it said.
pub fn recv_timestamped(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    // Room for one cmsghdr carrying a timespec, aligned as the kernel wants.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below refer to
    // `iov`, `buf` and `control`, which outlive the recvmsg call, with
    // their true lengths.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: see above; recvmsg writes at most the lengths given.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within `msg_controllen`; a timestamp's data is one timespec, read
    // unaligned because cmsg data carries no alignment promise.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let time: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                stamp = Some(time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64);
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Ok((n as usize, stamp))
}

/// Wall-clock nanoseconds since the epoch: the clock of [`recv_timestamped`].
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A periodic `timerfd`, registered with a poll like a socket.
#[derive(Debug)]
pub struct Ticker(OwnedFd);

impl Ticker {
    /// A timer that becomes readable every `period`, starting one period
    /// from now.
    pub fn new(period: Duration) -> io::Result<Ticker> {
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let ticker = Ticker(unsafe { OwnedFd::from_raw_fd(fd) });
        let spec = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let setting = libc::itimerspec {
            it_interval: spec,
            it_value: spec,
        };
        // SAFETY: `setting` is a valid itimerspec; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &setting, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ticker)
    }

    /// Consumes the expirations so far, so the timer can fire again.
    pub fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into the array we own; a
        // non-blocking timerfd with nothing to read returns -1 (EAGAIN),
        // which means there is nothing to clear.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            );
        }
    }

    fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Source for Ticker {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.raw()).register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.raw()).reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.raw()).deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_data_carries_its_arrival_time() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sender = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiver, _) = listener.accept().unwrap();
        enable_receive_timestamps(&receiver).unwrap();
        // The kernel switches packet stamping on lazily, the first time a
        // socket asks: the first packets may still go unstamped.
        for _ in 0..200 {
            let before = wall_clock_ns();
            sender.write_all(b"hello").unwrap();
            let mut buf = [0u8; 16];
            let (n, stamp) = recv_timestamped(&receiver, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello");
            if let Some(stamp) = stamp {
                assert!(
                    stamp >= before && stamp <= wall_clock_ns(),
                    "{before} {stamp}"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no receive timestamp in 2 s");
    }

    #[test]
    fn reads_its_own_process_figures() {
        let pid = std::process::id();
        assert!(process_rss(pid).unwrap() > 0);
        assert!(process_status_kib(pid, "VmHWM").unwrap() > 0);
        assert!(process_status_kib(pid, "VmNoSuchField").is_err());
        assert!(process_open_fds(pid).unwrap() >= 3);
        process_cpu_time(pid).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {}
        assert!(own_cpu_time() > Duration::ZERO);
    }
}
