//! Turns the frontend's compiled WASM into the served site: `split` cuts the lazy routes into chunks
//! of their own and writes the JavaScript glue, in the file names Leptos's hydration scripts load;
//! `seal` (after the optimisers) moves the files into a directory named by their content's digest,
//! each beside its brotli and gzip forms, so the server can let browsers keep them for good.

use std::{fs, path::Path, path::PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};

/// The name Leptos loads the bundle by (`LEPTOS_OUTPUT_NAME` in `.cargo/config.toml`).
const OUTPUT_NAME: &str = "modelgate";
/// The split loader's file name and manifest, as Leptos's `HydrationScripts` expects them.
const SPLIT_LOADER: &str = "./__wasm_split.______________________.js";
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.json";
/// The file in the site's root naming the sealed directory under `pkg/` the server serves.
const BUILD_ID_FILE: &str = "build-id";

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    match args.iter().map(|a| a.to_str().unwrap_or_default()).collect::<Vec<_>>().as_slice() {
        ["split", _, _] => split(&args[1], &args[2]),
        ["seal", _, _] => seal(&args[1], &args[2]),
        _ => bail!("usage: site-builder split <frontend.wasm> <staging dir> | seal <staging dir> <site root>"),
    }
}

/// Splits `input` into the main module and the lazy routes' chunks, with their glue, into `out`.
fn split(input: &Path, out: &Path) -> Result<()> {
    let wasm = fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    empty_dir(out)?;

    let main_module = input.with_file_name(format!("{OUTPUT_NAME}_split.wasm"));
    let js_module = format!("./{OUTPUT_NAME}.js");
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&wasm);
        options.output_dir = out;
        options.main_out_path = &main_module;
        options.main_module = &js_module;
        options.link_name = SPLIT_LOADER;
        options
    })
    .map_err(|e| anyhow!("splitting {}: {e:?}", input.display()))?;
    fs::write(out.join(SPLIT_MANIFEST), serde_json::to_vec(&split.prefetch_map)?)?;
    drop(wasm);

    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&main_module)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .keep_lld_exports(true)
        .demangle(false)
        .generate(out)
        .with_context(|| format!("generating the JavaScript glue for {}", main_module.display()))?;
    // Leptos's hydration script loads `<name>.wasm` when LEPTOS_OUTPUT_NAME is set.
    fs::rename(out.join(format!("{OUTPUT_NAME}_bg.wasm")), out.join(format!("{OUTPUT_NAME}.wasm")))?;
    Ok(())
}

/// Moves the files of `staging` to `<site>/pkg/<digest>/`, the digest over every file's name and
/// bytes, each with `.br` (quality 11) and `.gz` (level 9) forms beside it; writes the digest to
/// `<site>/build-id` and removes earlier builds. The files refer to each other by relative names, so
/// the directory moves whole.
fn seal(staging: &Path, site: &Path) -> Result<()> {
    let mut names: Vec<String> = fs::read_dir(staging)
        .with_context(|| format!("reading {}", staging.display()))?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    let mut digest = Sha256::new();
    for name in &names {
        digest.update(name.as_bytes());
        digest.update(fs::read(staging.join(name))?);
    }
    let id = hex::encode(&digest.finalize()[..8]);

    let pkg = site.join("pkg");
    empty_dir(&pkg)?;
    let sealed = pkg.join(&id);
    fs::rename(staging, &sealed).with_context(|| format!("moving {} to {}", staging.display(), sealed.display()))?;
    // Two compressors at a time: brotli at quality 11 takes a second or more on the main bundle.
    let (left, right) = names.split_at(names.len() / 2);
    std::thread::scope(|scope| -> Result<()> {
        let other = scope.spawn(|| compress_all(&sealed, right));
        compress_all(&sealed, left)?;
        other.join().map_err(|_| anyhow!("a compressor panicked"))?
    })?;
    fs::write(site.join(BUILD_ID_FILE), &id)?;
    Ok(())
}

/// Writes `<name>.br` and `<name>.gz` beside each of `names` in `dir`.
fn compress_all(dir: &Path, names: &[String]) -> Result<()> {
    use std::io::Write;
    for name in names {
        let bytes = fs::read(dir.join(name))?;
        let mut br = brotli::CompressorWriter::new(Vec::new(), 64 << 10, 11, 22);
        br.write_all(&bytes)?;
        fs::write(dir.join(format!("{name}.br")), br.into_inner())?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        fs::write(dir.join(format!("{name}.gz")), gz.finish()?)?;
    }
    Ok(())
}

/// Makes `dir` an empty directory.
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
