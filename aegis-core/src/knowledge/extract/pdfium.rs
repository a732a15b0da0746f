//! PDF with PDFium (Chromium's PDF library), page by page, loaded at run time from a
//! `libpdfium.so` (the one inside the `pypdfium2` wheel by default: see
//! [`super::PdfConfig`]). PDFium's text follows the content stream with the spaces and line
//! breaks it infers from glyph positions, which lopdf does not; it decrypts documents that
//! need no user password and refuses the others with a password error.
//!
//! Twelve functions of PDFium's stable C API are bound by hand with `libloading`: the
//! `pdfium-render` crate binds several hundred at load (failing when a build of the
//! library lacks any of them) and is some 200,000 lines to compile. PDFium is not
//! thread-safe, so every use holds one process-wide lock; a crash inside it takes its
//! process down, which the child-process isolation contains (see `isolate`).
//!
//! The one module of the crate allowed `unsafe`: calling a C library cannot be done
//! without it. Every block says why it is sound.
#![allow(unsafe_code)]

use std::{
    ffi::{c_char, c_int, c_ulong, c_ushort, c_void},
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use super::{ExtractError, Extracted, Extractor, Limits, pdf};

/// PDF documents read with PDFium from `library`.
pub struct Pdfium {
    /// The `libpdfium.so` to load.
    pub library: PathBuf,
}

type Handle = *mut c_void;

/// The functions used, from one loaded library.
struct Api {
    load_mem_document: unsafe extern "C" fn(*const c_void, usize, *const c_char) -> Handle,
    get_last_error: unsafe extern "C" fn() -> c_ulong,
    close_document: unsafe extern "C" fn(Handle),
    get_page_count: unsafe extern "C" fn(Handle) -> c_int,
    load_page: unsafe extern "C" fn(Handle, c_int) -> Handle,
    close_page: unsafe extern "C" fn(Handle),
    text_load_page: unsafe extern "C" fn(Handle) -> Handle,
    text_close_page: unsafe extern "C" fn(Handle),
    text_count_chars: unsafe extern "C" fn(Handle) -> c_int,
    text_get_text: unsafe extern "C" fn(Handle, c_int, c_int, *mut c_ushort) -> c_int,
    /// Kept loaded for as long as the function pointers above are used (the process).
    _library: libloading::Library,
}

/// PDFium's error codes (`FPDF_ERR_*`).
const ERR_FILE: c_ulong = 2;
const ERR_FORMAT: c_ulong = 3;
const ERR_PASSWORD: c_ulong = 4;
const ERR_SECURITY: c_ulong = 5;

/// The library, loaded and initialised once per process (from the first path that loads).
static API: OnceLock<Api> = OnceLock::new();
/// PDFium is not thread-safe: every call into it, and the loading, holds this.
static LOCK: Mutex<()> = Mutex::new(());

impl Api {
    /// The process's library, loaded from `library` if none is loaded yet.
    fn get(library: &Path) -> Result<&'static Api, ExtractError> {
        if let Some(api) = API.get() {
            return Ok(api);
        }
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(api) = API.get() {
            return Ok(api);
        }
        let api = Self::load(library).map_err(|e| {
            ExtractError::Unsupported(format!("PDFium could not be loaded from `{}`: {e}", library.display()))
        })?;
        Ok(API.get_or_init(|| api))
    }

    /// Loads and initialises the library; the caller holds [`LOCK`].
    fn load(path: &Path) -> Result<Api, String> {
        // SAFETY: loading runs the library's initialisers; libpdfium has no unusual ones.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        macro_rules! bind {
            ($name:literal) => {
                // SAFETY: the symbol is a function of PDFium's public C API (fpdfview.h,
                // fpdf_text.h) with the signature of the field it is stored in.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("{}: {e}", $name))?
            };
        }
        let init: unsafe extern "C" fn() = bind!("FPDF_InitLibrary");
        let api = Api {
            load_mem_document: bind!("FPDF_LoadMemDocument64"),
            get_last_error: bind!("FPDF_GetLastError"),
            close_document: bind!("FPDF_CloseDocument"),
            get_page_count: bind!("FPDF_GetPageCount"),
            load_page: bind!("FPDF_LoadPage"),
            close_page: bind!("FPDF_ClosePage"),
            text_load_page: bind!("FPDFText_LoadPage"),
            text_close_page: bind!("FPDFText_ClosePage"),
            text_count_chars: bind!("FPDFText_CountChars"),
            text_get_text: bind!("FPDFText_GetText"),
            _library: library,
        };
        // SAFETY: called once, before any other PDFium function, under the lock.
        unsafe { init() };
        Ok(api)
    }
}

/// Closes a PDFium object when dropped.
struct Owned<'a> {
    handle: Handle,
    close: &'a unsafe extern "C" fn(Handle),
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: `handle` came from the matching open function and is closed once.
        unsafe { (self.close)(self.handle) }
    }
}

impl Api {
    /// The text of page `index` (0-based), or `None` when the page cannot be loaded.
    fn page_text(&self, document: Handle, index: c_int) -> Option<String> {
        // SAFETY: `document` is open; the page and text page are closed (text page first,
        // by drop order) before the document.
        unsafe {
            let page = (self.load_page)(document, index);
            if page.is_null() {
                return None;
            }
            let page = Owned { handle: page, close: &self.close_page };
            let text_page = (self.text_load_page)(page.handle);
            if text_page.is_null() {
                return None;
            }
            let text_page = Owned { handle: text_page, close: &self.text_close_page };
            let count = (self.text_count_chars)(text_page.handle);
            if count <= 0 {
                return Some(String::new());
            }
            // UTF-16 code units plus the terminating NUL PDFium writes.
            let mut buffer = vec![0u16; count as usize + 1];
            let written = (self.text_get_text)(text_page.handle, 0, count, buffer.as_mut_ptr());
            let len = usize::try_from(written).unwrap_or(0).saturating_sub(1).min(count as usize);
            Some(String::from_utf16_lossy(&buffer[..len]))
        }
    }
}

impl Extractor for Pdfium {
    fn extract(&self, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
        pdf::check_header(bytes)?;
        let api = Api::get(&self.library)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `bytes` outlives the document, which is closed at the end of this call.
        let document = unsafe { (api.load_mem_document)(bytes.as_ptr().cast(), bytes.len(), std::ptr::null()) };
        if document.is_null() {
            // SAFETY: no other PDFium call ran since the failed load (the lock is held).
            return Err(match unsafe { (api.get_last_error)() } {
                ERR_PASSWORD => ExtractError::Encrypted("a user password is required to read its text".into()),
                ERR_SECURITY => ExtractError::Encrypted("its security handler is not supported".into()),
                ERR_FORMAT | ERR_FILE => ExtractError::Malformed("PDF: not a readable PDF file".into()),
                code => ExtractError::Malformed(format!("PDF: PDFium could not open it (error {code})")),
            });
        }
        let document = Owned { handle: document, close: &api.close_document };
        // SAFETY: the document is open.
        let pages = unsafe { (api.get_page_count)(document.handle) };
        if pages <= 0 {
            return Err(ExtractError::Malformed("the document has no pages".into()));
        }
        let texts = (0..pages).map(|index| {
            let text = api.page_text(document.handle, index).ok_or_else(|| "it could not be loaded".to_owned());
            (index as u32 + 1, text)
        });
        Ok(pdf::assemble(texts, limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let reader = Pdfium { library: "/nonexistent/libpdfium.so".into() };
        let err = reader.extract(b"%PDF-1.4\n", &Limits::default()).unwrap_err();
        assert!(matches!(&err, ExtractError::Unsupported(m) if m.contains("/nonexistent/libpdfium.so")), "{err}");
    }
}
