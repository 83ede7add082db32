//! The S3 gateway inside a sandbox. User code reaches pachd's S3 gateway at
//! `127.0.0.1:PORT` of the sandbox's own network namespace and nowhere else
//! on the host: the agent, which runs in that namespace, binds a listening
//! socket there before it says `ready` and hands it over to pachd on a
//! socket pair that bubblewrap passes down (descriptor [`GATEWAY_FD`]),
//! with `SCM_RIGHTS`; then it closes its own copy. pachd accepts user code's
//! connections on that socket and serves them with the S3 gateway only
//! ([`ServeListener`]), for as long as the sandbox lives.
//!
//! The direction is the opposite of a service's (`agent::SERVICE_SOCKET`):
//! there pachd opens the connections and a forwarder carries them in; here
//! user code opens them and pachd holds the listener itself, so nothing is
//! copied and nothing of the host is bound or exposed for it.
//!
//! Invariant: the only listening socket user code can reach outside its
//! datum is the one handed over here, and pachd serves only the S3 gateway
//! on it.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::{Result, WorkerError};

/// The agent's end of the hand-over socket pair.
pub(crate) const GATEWAY_FD: RawFd = 4;

/// What pachd does with the listener a sandbox hands over: serve the S3
/// gateway on it until the returned task is aborted (when the sandbox ends).
pub type ServeListener =
    Arc<dyn Fn(std::net::TcpListener) -> tokio::task::JoinHandle<()> + Send + Sync>;

/// The gateway a sandbox gets: its port on the sandbox's loopback, and what
/// serves the connections made to it.
#[derive(Clone)]
pub struct Gateway {
    pub port: u16,
    pub serve: ServeListener,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").field("port", &self.port).finish()
    }
}

fn io_error(what: &'static str) -> impl FnOnce(std::io::Error) -> WorkerError {
    move |source| WorkerError::Io {
        what,
        path: PathBuf::new(),
        source,
    }
}

/// A connected pair of Unix sockets (pachd's end, the agent's end), both
/// close-on-exec and numbered 10 or higher, so that moving the agent's to
/// [`GATEWAY_FD`] in the child clobbers neither.
pub(crate) fn channel() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [0; 2];
    // SAFETY: socketpair writes two descriptors, owned below.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io_error("cannot create the gateway's socket pair")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let high = |fd: OwnedFd| -> Result<OwnedFd> {
        // SAFETY: duplicates an owned descriptor; the copy is owned below.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
        if n < 0 {
            return Err(io_error("cannot create the gateway's socket pair")(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `n` was just created.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    Ok((high(a)?, high(b)?))
}

/// The agent's side: listens on `127.0.0.1:port` in the sandbox's network
/// namespace and sends the listening socket over [`GATEWAY_FD`].
pub(crate) fn hand_over(port: u16) -> std::result::Result<(), String> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for the S3 gateway: {e}"))?;
    send_fd(GATEWAY_FD, listener.as_raw_fd())
        .map_err(|e| format!("cannot hand the S3 gateway's socket over to pachd: {e}"))
}

/// pachd's side: the listener the agent sent on `ours` (it is sent before
/// the agent says `ready`, so it is waiting when this is called).
pub(crate) fn receive(ours: &OwnedFd) -> Result<std::net::TcpListener> {
    let fd = recv_fd(ours.as_raw_fd()).map_err(io_error(
        "the sandbox's agent did not hand over the S3 gateway's socket",
    ))?;
    let listener = std::net::TcpListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(io_error("cannot use the S3 gateway's socket"))?;
    Ok(listener)
}

/// Room for one descriptor's control message.
const CMSG_ROOM: usize = 64;

fn send_fd(channel: RawFd, fd: RawFd) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; CMSG_ROOM];
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call, and the control buffer has room for one descriptor
    // (CMSG_SPACE of an int is far below CMSG_ROOM).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(channel, &msg, 0) != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn recv_fd(channel: RawFd) -> std::io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; CMSG_ROOM];
    // SAFETY: as in `send_fd`; the kernel writes at most msg_controllen
    // bytes of control data, and a descriptor it passes is owned here.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_ROOM;
        let n = libc::recvmsg(
            channel,
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n != 1
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(std::io::Error::other("no socket came with the message"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        let owned = OwnedFd::from_raw_fd(fd);
        // Only a listening TCP socket is taken.
        let mut listening: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let r = libc::getsockopt(
            owned.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len,
        );
        if r != 0 || listening == 0 {
            return Err(std::io::Error::other("what came is not a listening socket"));
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_crosses_the_socket_pair() {
        let (ours, theirs) = channel().unwrap();
        assert!(ours.as_raw_fd() >= 10 && theirs.as_raw_fd() >= 10);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        send_fd(theirs.as_raw_fd(), listener.as_raw_fd()).unwrap();
        drop(listener);
        let got = receive(&ours).unwrap();
        assert_eq!(got.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        got.set_nonblocking(false).unwrap();
        assert!(got.accept().is_ok());
    }

    #[test]
    fn anything_but_a_listener_is_refused() {
        let (ours, theirs) = channel().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send_fd(theirs.as_raw_fd(), file.as_raw_fd()).unwrap();
        assert!(receive(&ours).is_err());
        // Nothing sent at all.
        assert!(receive(&ours).is_err());
    }
}
