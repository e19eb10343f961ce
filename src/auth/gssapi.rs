//! GSS-API (Kerberos 5) for SASL GSSAPI, the server's acceptor and `corral cli`'s initiator:
//! the system's MIT Kerberos library (`libgssapi_krb5.so.2`, and `libkrb5.so.3` for the default realm) loaded with
//! dlopen when a JAAS `Server` section logs in with Krb5LoginModule, so corral builds and runs
//! without Kerberos everywhere else (docs/decisions.md, "GSSAPI through dlopen").
//!
//! The initiator side (`Initiator`, after `init_initiator`) is `corral cli`'s, logging in as a
//! JAAS `Client` section's Krb5LoginModule says: from a keytab (MIT's client keytab, with an
//! in-memory ticket cache) or from the user's ticket cache.
//!
//! `init` runs once at start-up: it points MIT at the krb5.conf and keytab the configuration
//! names, and acquires the service principal's acceptor credential once to prove the keytab
//! holds its key (so a bad keytab stops the start, as ZooKeeper's login does). Each shard
//! thread then acquires its own credential on first use (`Context::accept`); a context lives
//! on the connection that made it.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::OnceLock;

type Om = u32;
type Handle = *mut c_void;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

impl Buffer {
    fn empty() -> Buffer {
        Buffer {
            length: 0,
            value: std::ptr::null_mut(),
        }
    }

    /// A view of `b` (GSS-API only reads an input buffer).
    fn of(b: &[u8]) -> Buffer {
        Buffer {
            length: b.len(),
            value: b.as_ptr() as *mut c_void,
        }
    }
}

#[repr(C)]
struct Oid {
    length: Om,
    elements: *const c_void,
}

#[repr(C)]
struct OidSet {
    count: usize,
    elements: *const Oid,
}

/// The Kerberos 5 mechanism, 1.2.840.113554.1.2.2: the only one the credential is for, as
/// the JDK's acceptor (without it MIT also offers SPNEGO, which answers an empty token with
/// a mechanism list instead of failing).
const KRB5_MECH: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// GSS_KRB5_NT_PRINCIPAL_NAME, 1.2.840.113554.1.2.2.1: a name as `service/host@REALM`.
const KRB5_PRINCIPAL_NAME: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];
/// GSS_C_NT_HOSTBASED_SERVICE, 1.2.840.113554.1.2.1.4: a name as `service@host`, whose realm
/// Kerberos finds from the host (krb5.conf's domain_realm), as the JDK's client does.
const HOSTBASED_SERVICE: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];
const GSS_C_INITIATE: c_int = 1;
const GSS_C_ACCEPT: c_int = 2;
const GSS_C_MUTUAL_FLAG: Om = 2;
const GSS_C_INTEG_FLAG: Om = 32;
const GSS_C_INDEFINITE: Om = 0xffff_ffff;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
const GSS_S_CONTINUE_NEEDED: Om = 1;

fn is_error(major: Om) -> bool {
    major & 0xffff_0000 != 0
}

type ImportName = unsafe extern "C" fn(*mut Om, *const Buffer, *const Oid, *mut Handle) -> Om;
type AcquireCred = unsafe extern "C" fn(
    *mut Om,
    Handle,
    Om,
    *const c_void,
    c_int,
    *mut Handle,
    *mut *mut c_void,
    *mut Om,
) -> Om;
type AcceptSecContext = unsafe extern "C" fn(
    *mut Om,
    *mut Handle,
    Handle,
    *const Buffer,
    *const c_void,
    *mut Handle,
    *mut *const Oid,
    *mut Buffer,
    *mut Om,
    *mut Om,
    *mut Handle,
) -> Om;
type InitSecContext = unsafe extern "C" fn(
    *mut Om,
    Handle,
    *mut Handle,
    Handle,
    *const Oid,
    Om,
    Om,
    *const c_void,
    *const Buffer,
    *mut *const Oid,
    *mut Buffer,
    *mut Om,
    *mut Om,
) -> Om;
type DisplayName = unsafe extern "C" fn(*mut Om, Handle, *mut Buffer, *mut *const Oid) -> Om;
type Wrap =
    unsafe extern "C" fn(*mut Om, Handle, c_int, Om, *const Buffer, *mut c_int, *mut Buffer) -> Om;
type Unwrap =
    unsafe extern "C" fn(*mut Om, Handle, *const Buffer, *mut Buffer, *mut c_int, *mut Om) -> Om;
type ReleaseBuffer = unsafe extern "C" fn(*mut Om, *mut Buffer) -> Om;
type ReleaseHandle = unsafe extern "C" fn(*mut Om, *mut Handle) -> Om;
type DeleteSecContext = unsafe extern "C" fn(*mut Om, *mut Handle, *mut Buffer) -> Om;
type DisplayStatus =
    unsafe extern "C" fn(*mut Om, Om, c_int, *const Oid, *mut Om, *mut Buffer) -> Om;
type RegisterAcceptorIdentity = unsafe extern "C" fn(*const c_char) -> Om;

/// The functions used, from `libgssapi_krb5.so.2`.
struct Lib {
    import_name: ImportName,
    acquire_cred: AcquireCred,
    accept_sec_context: AcceptSecContext,
    init_sec_context: InitSecContext,
    display_name: DisplayName,
    wrap: Wrap,
    unwrap: Unwrap,
    release_buffer: ReleaseBuffer,
    release_name: ReleaseHandle,
    release_cred: ReleaseHandle,
    delete_sec_context: DeleteSecContext,
    display_status: DisplayStatus,
}

/// The loaded library and the acceptor's principal (empty in a client).
struct Gss {
    lib: Lib,
    principal: String,
    default_realm: Option<String>,
}

static GSS: OnceLock<Gss> = OnceLock::new();

const GSSAPI_LIB: &str = "libgssapi_krb5.so.2";
const KRB5_LIB: &str = "libkrb5.so.3";

fn dlopen(name: &str) -> Result<*mut c_void, String> {
    let c = CString::new(name).unwrap();
    // SAFETY: a constant library name; the handle is never closed (the functions stay in use
    // for the life of the process).
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        return Err(format!(
            "SASL GSSAPI needs MIT Kerberos's {name} (Debian: libgssapi-krb5-2), which could \
             not be loaded"
        ));
    }
    Ok(h)
}

/// The address of `name` in `lib`, as a function pointer of type `T`.
///
/// SAFETY: the caller names `T` as the C prototype of `name`.
unsafe fn symbol<T: Copy>(lib: *mut c_void, name: &str) -> Result<T, String> {
    let c = CString::new(name).unwrap();
    let p = libc::dlsym(lib, c.as_ptr());
    if p.is_null() {
        return Err(format!("{name} is missing from the Kerberos library"));
    }
    Ok(std::mem::transmute_copy::<*mut c_void, T>(&p))
}

/// The functions of the library opened as `h`.
fn load(h: *mut c_void) -> Result<Lib, String> {
    // SAFETY: each type is the prototype in MIT's gssapi.h.
    unsafe {
        Ok(Lib {
            import_name: symbol(h, "gss_import_name")?,
            acquire_cred: symbol(h, "gss_acquire_cred")?,
            accept_sec_context: symbol(h, "gss_accept_sec_context")?,
            init_sec_context: symbol(h, "gss_init_sec_context")?,
            display_name: symbol(h, "gss_display_name")?,
            wrap: symbol(h, "gss_wrap")?,
            unwrap: symbol(h, "gss_unwrap")?,
            release_buffer: symbol(h, "gss_release_buffer")?,
            release_name: symbol(h, "gss_release_name")?,
            release_cred: symbol(h, "gss_release_cred")?,
            delete_sec_context: symbol(h, "gss_delete_sec_context")?,
            display_status: symbol(h, "gss_display_status")?,
        })
    }
}

/// krb5.conf's `default_realm` (what ZooKeeper's Kerberos name rules compare a realm with).
fn default_realm() -> Option<String> {
    type Init = unsafe extern "C" fn(*mut Handle) -> i32;
    type GetRealm = unsafe extern "C" fn(Handle, *mut *mut c_char) -> i32;
    type FreeRealm = unsafe extern "C" fn(Handle, *mut c_char);
    type FreeContext = unsafe extern "C" fn(Handle);
    let h = dlopen(KRB5_LIB).ok()?;
    // SAFETY: the prototypes of MIT's krb5.h; the realm string is copied before it is freed.
    unsafe {
        let init: Init = symbol(h, "krb5_init_context").ok()?;
        let get: GetRealm = symbol(h, "krb5_get_default_realm").ok()?;
        let free_realm: FreeRealm = symbol(h, "krb5_free_default_realm").ok()?;
        let free_context: FreeContext = symbol(h, "krb5_free_context").ok()?;
        let mut ctx: Handle = std::ptr::null_mut();
        if init(&mut ctx) != 0 {
            return None;
        }
        let mut realm: *mut c_char = std::ptr::null_mut();
        let r = if get(ctx, &mut realm) == 0 && !realm.is_null() {
            let s = CStr::from_ptr(realm).to_string_lossy().into_owned();
            free_realm(ctx, realm);
            Some(s)
        } else {
            None
        };
        free_context(ctx);
        r
    }
}

impl Gss {
    /// The text of a GSS-API failure: the major status's, then the mechanism's (which names
    /// the cause: a key version the keytab lacks, a clock skew, a replayed authenticator).
    fn describe(&self, major: Om, minor: Om) -> String {
        let mut parts = Vec::new();
        for (code, kind) in [(major, GSS_C_GSS_CODE), (minor, GSS_C_MECH_CODE)] {
            if kind == GSS_C_MECH_CODE && code == 0 {
                continue;
            }
            let mut ctx: Om = 0;
            loop {
                let mut m: Om = 0;
                let mut b = Buffer::empty();
                // SAFETY: out-parameters owned here; the buffer is released below.
                let st = unsafe {
                    (self.lib.display_status)(
                        &mut m,
                        code,
                        kind,
                        std::ptr::null(),
                        &mut ctx,
                        &mut b,
                    )
                };
                if is_error(st) {
                    break;
                }
                parts.push(self.take(&mut b));
                if ctx == 0 {
                    break;
                }
            }
        }
        parts.join(": ")
    }

    /// Copies a buffer GSS-API allocated, and releases it.
    fn take(&self, b: &mut Buffer) -> String {
        String::from_utf8_lossy(&self.take_bytes(b)).into_owned()
    }

    fn take_bytes(&self, b: &mut Buffer) -> Vec<u8> {
        let v = if b.value.is_null() || b.length == 0 {
            Vec::new()
        } else {
            // SAFETY: GSS-API filled `length` bytes at `value`.
            unsafe { std::slice::from_raw_parts(b.value as *const u8, b.length).to_vec() }
        };
        let mut m: Om = 0;
        // SAFETY: a buffer GSS-API allocated (or an empty one, which it ignores).
        unsafe { (self.lib.release_buffer)(&mut m, b) };
        v
    }

    /// A GSS-API name: `text` read as `kind` (one of the name-type OIDs above).
    fn import(&self, text: &str, kind: &[u8]) -> Result<Handle, String> {
        let oid = Oid {
            length: kind.len() as Om,
            elements: kind.as_ptr() as *const c_void,
        };
        let text_buf = Buffer::of(text.as_bytes());
        let mut minor: Om = 0;
        let mut name: Handle = std::ptr::null_mut();
        // SAFETY: inputs live across the call; the caller releases `name`.
        let major = unsafe { (self.lib.import_name)(&mut minor, &text_buf, &oid, &mut name) };
        if is_error(major) {
            return Err(format!("name {text:?}: {}", self.describe(major, minor)));
        }
        Ok(name)
    }

    fn release_name(&self, mut name: Handle) {
        if !name.is_null() {
            let mut m: Om = 0;
            // SAFETY: a name this module imported or was given.
            unsafe { (self.lib.release_name)(&mut m, &mut name) };
        }
    }

    /// An acceptor credential for the configured principal, from the keytab.
    fn acquire(&self) -> Result<Handle, String> {
        self.credential(&self.principal, GSS_C_ACCEPT).map_err(|e| {
            format!(
                "no acceptor credential for {:?} in the keytab: {e}",
                self.principal
            )
        })
    }

    /// A Kerberos 5 credential of `principal` for `usage` (accept or initiate).
    fn credential(&self, principal: &str, usage: c_int) -> Result<Handle, String> {
        let name = self.import(principal, &KRB5_PRINCIPAL_NAME)?;
        let mut minor: Om = 0;
        let mech = Oid {
            length: KRB5_MECH.len() as Om,
            elements: KRB5_MECH.as_ptr() as *const c_void,
        };
        let mechs = OidSet {
            count: 1,
            elements: &mech,
        };
        let mut cred: Handle = std::ptr::null_mut();
        // SAFETY: as above; the credential is the caller's to keep or release.
        let major = unsafe {
            (self.lib.acquire_cred)(
                &mut minor,
                name,
                GSS_C_INDEFINITE,
                &mechs as *const OidSet as *const c_void,
                usage,
                &mut cred,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        self.release_name(name);
        if is_error(major) {
            return Err(self.describe(major, minor));
        }
        Ok(cred)
    }

    /// gss_wrap without confidentiality (integrity only: the SASL layer negotiation).
    fn wrap(&self, ctx: Handle, msg: &[u8]) -> Result<Vec<u8>, String> {
        let input = Buffer::of(msg);
        let mut out = Buffer::empty();
        let mut minor: Om = 0;
        // SAFETY: an established context; `out` is released by take_bytes.
        let major = unsafe {
            (self.lib.wrap)(
                &mut minor,
                ctx,
                0,
                0,
                &input,
                std::ptr::null_mut(),
                &mut out,
            )
        };
        let bytes = self.take_bytes(&mut out);
        if is_error(major) {
            return Err(self.describe(major, minor));
        }
        Ok(bytes)
    }

    /// gss_unwrap: checks the token's integrity (and decrypts it if it was sealed).
    fn unwrap(&self, ctx: Handle, token: &[u8]) -> Result<Vec<u8>, String> {
        let input = Buffer::of(token);
        let mut out = Buffer::empty();
        let mut minor: Om = 0;
        // SAFETY: as for wrap.
        let major = unsafe {
            (self.lib.unwrap)(
                &mut minor,
                ctx,
                &input,
                &mut out,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let bytes = self.take_bytes(&mut out);
        if is_error(major) {
            return Err(self.describe(major, minor));
        }
        Ok(bytes)
    }

    fn delete_context(&self, ctx: &mut Handle) {
        if !ctx.is_null() {
            let mut m: Om = 0;
            // SAFETY: a context this module made; no output token is wanted.
            unsafe { (self.lib.delete_sec_context)(&mut m, ctx, std::ptr::null_mut()) };
        }
    }
}

/// Loads Kerberos and checks that `keytab` holds `principal`'s key. `krb5_conf` (the JVM's
/// `java.security.krb5.conf`) becomes MIT's `KRB5_CONFIG`. Once per process; a second call
/// with other settings is refused.
pub fn init(keytab: &Path, principal: &str, krb5_conf: Option<&Path>) -> Result<(), String> {
    if let Some(g) = GSS.get() {
        return if g.principal == principal {
            Ok(())
        } else {
            Err("Kerberos is already set up for another principal".into())
        };
    }
    if let Some(conf) = krb5_conf {
        // Read by MIT when it makes its first context, below; set before any Kerberos call.
        std::env::set_var("KRB5_CONFIG", conf);
    }
    let h = dlopen(GSSAPI_LIB)?;
    // SAFETY: MIT's prototype; the path is copied by the library.
    let register: RegisterAcceptorIdentity =
        unsafe { symbol(h, "krb5_gss_register_acceptor_identity")? };
    let path = CString::new(keytab.as_os_str().as_encoded_bytes())
        .map_err(|_| "keytab path holds a NUL".to_string())?;
    // SAFETY: a NUL-terminated path.
    if is_error(unsafe { register(path.as_ptr()) }) {
        return Err(format!("keytab {}: refused by Kerberos", keytab.display()));
    }
    let gss = Gss {
        lib: load(h)?,
        principal: principal.to_string(),
        default_realm: default_realm(),
    };
    let cred = gss
        .acquire()
        .map_err(|e| format!("keytab {}: {e}", keytab.display()))?;
    let mut m: Om = 0;
    let mut cred = cred;
    // SAFETY: the credential acquired just above; each shard acquires its own.
    unsafe { (gss.lib.release_cred)(&mut m, &mut cred) };
    let _ = GSS.set(gss);
    Ok(())
}

/// krb5.conf's default realm, once `init` ran (None if it has none).
pub fn default_realm_name() -> Option<&'static str> {
    GSS.get()?.default_realm.as_deref()
}

thread_local! {
    /// This thread's acceptor credential (MIT's are safe to share, but one per shard needs
    /// no such promise).
    static CRED: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

fn gss() -> Result<&'static Gss, String> {
    GSS.get()
        .ok_or_else(|| "Kerberos is not set up (no Krb5LoginModule login)".to_string())
}

/// One acceptor security context: a connection's login.
pub struct Context {
    ctx: Handle,
}

/// What one accepted token gave.
pub struct Accepted {
    /// The token for the client (empty when there is none).
    pub token: Vec<u8>,
    /// The client's principal, once the context is established.
    pub peer: Option<String>,
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

impl Context {
    pub fn new() -> Context {
        Context {
            ctx: std::ptr::null_mut(),
        }
    }

    /// gss_accept_sec_context on the client's token.
    pub fn accept(&mut self, token: &[u8]) -> Result<Accepted, String> {
        let g = gss()?;
        let cred = CRED.with(|c| -> Result<Handle, String> {
            let mut c = c.borrow_mut();
            if let Some(h) = *c {
                return Ok(h);
            }
            let h = g.acquire()?;
            *c = Some(h);
            Ok(h)
        })?;
        let input = Buffer::of(token);
        let mut minor: Om = 0;
        let mut src: Handle = std::ptr::null_mut();
        let mut out = Buffer::empty();
        // SAFETY: the context handle is this value's; out-parameters are owned here and
        // released below.
        let major = unsafe {
            (g.lib.accept_sec_context)(
                &mut minor,
                &mut self.ctx,
                cred,
                &input,
                std::ptr::null(),
                &mut src,
                std::ptr::null_mut(),
                &mut out,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let token = g.take_bytes(&mut out);
        if is_error(major) {
            return Err(g.describe(major, minor));
        }
        let peer = if major & GSS_S_CONTINUE_NEEDED != 0 || src.is_null() {
            None
        } else {
            let mut b = Buffer::empty();
            let mut m: Om = 0;
            // SAFETY: the source name the call returned, released right after.
            let st = unsafe { (g.lib.display_name)(&mut m, src, &mut b, std::ptr::null_mut()) };
            let name = (!is_error(st)).then(|| g.take(&mut b));
            Some(name.ok_or_else(|| g.describe(st, m))?)
        };
        if !src.is_null() {
            let mut m: Om = 0;
            // SAFETY: as above.
            unsafe { (g.lib.release_name)(&mut m, &mut src) };
        }
        Ok(Accepted { token, peer })
    }

    pub fn wrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        gss()?.wrap(self.ctx, msg)
    }

    pub fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
        gss()?.unwrap(self.ctx, token)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(g) = GSS.get() {
            g.delete_context(&mut self.ctx);
        }
    }
}

/// Loads Kerberos for a client: `krb5_conf` as for `init`; with `keytab` the login takes its
/// tickets from it (MIT's client keytab) into an in-memory cache, as Krb5LoginModule's
/// `useKeyTab`, touching no ticket cache on disk; otherwise from `ticket_cache` or the user's
/// default one (`kinit`'s), as `useTicketCache`. Once per process, before any thread starts.
pub fn init_initiator(
    krb5_conf: Option<&Path>,
    keytab: Option<&Path>,
    ticket_cache: Option<&Path>,
) -> Result<(), String> {
    if GSS.get().is_some() {
        return Ok(());
    }
    if let Some(conf) = krb5_conf {
        std::env::set_var("KRB5_CONFIG", conf);
    }
    if let Some(kt) = keytab {
        std::env::set_var("KRB5_CLIENT_KTNAME", kt);
        std::env::set_var(
            "KRB5CCNAME",
            format!("MEMORY:corral-cli-{}", std::process::id()),
        );
    } else if let Some(cache) = ticket_cache {
        std::env::set_var("KRB5CCNAME", format!("FILE:{}", cache.display()));
    }
    let _ = GSS.set(Gss {
        lib: load(dlopen(GSSAPI_LIB)?)?,
        principal: String::new(),
        default_realm: default_realm(),
    });
    Ok(())
}

/// One initiator security context: `corral cli`'s login to one server.
pub struct Initiator {
    ctx: Handle,
    target: Handle,
    cred: Handle,
}

impl Initiator {
    /// A context for `service@host`, as `principal` (the credential's default principal if
    /// None).
    pub fn new(service: &str, host: &str, principal: Option<&str>) -> Result<Initiator, String> {
        let g = gss()?;
        let target = g.import(&format!("{service}@{host}"), &HOSTBASED_SERVICE)?;
        let cred = match principal {
            None => Ok(std::ptr::null_mut()),
            Some(p) => g
                .credential(p, GSS_C_INITIATE)
                .map_err(|e| format!("no credential for {p:?}: {e}")),
        };
        let cred = match cred {
            Ok(c) => c,
            Err(e) => {
                g.release_name(target);
                return Err(e);
            }
        };
        Ok(Initiator {
            ctx: std::ptr::null_mut(),
            target,
            cred,
        })
    }

    /// gss_init_sec_context on the server's last token (None for the first call): the token
    /// for the server, and whether the context is established.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<(Vec<u8>, bool), String> {
        let g = gss()?;
        let mech = Oid {
            length: KRB5_MECH.len() as Om,
            elements: KRB5_MECH.as_ptr() as *const c_void,
        };
        let buf = input.map(Buffer::of);
        let mut out = Buffer::empty();
        let mut minor: Om = 0;
        // SAFETY: handles owned by this value; out-parameters released below.
        let major = unsafe {
            (g.lib.init_sec_context)(
                &mut minor,
                self.cred,
                &mut self.ctx,
                self.target,
                &mech,
                GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG,
                0,
                std::ptr::null(),
                buf.as_ref()
                    .map_or(std::ptr::null(), |b| b as *const Buffer),
                std::ptr::null_mut(),
                &mut out,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let token = g.take_bytes(&mut out);
        if is_error(major) {
            return Err(g.describe(major, minor));
        }
        Ok((token, major & GSS_S_CONTINUE_NEEDED == 0))
    }

    pub fn wrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        gss()?.wrap(self.ctx, msg)
    }

    pub fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
        gss()?.unwrap(self.ctx, token)
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        let Some(g) = GSS.get() else {
            return;
        };
        g.delete_context(&mut self.ctx);
        g.release_name(self.target);
        if !self.cred.is_null() {
            let mut m: Om = 0;
            // SAFETY: the credential acquired in `new`.
            unsafe { (g.lib.release_cred)(&mut m, &mut self.cred) };
        }
    }
}
