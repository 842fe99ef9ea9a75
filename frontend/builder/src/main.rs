//! Turns the frontend's compiled WASM into the served `pkg/` directory: lazy routes split into chunks
//! of their own, then the JavaScript glue, in the file names Leptos's hydration scripts load.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// The name Leptos loads the bundle by (`LEPTOS_OUTPUT_NAME` in `.cargo/config.toml`).
const OUTPUT_NAME: &str = "modelgate";
/// The split loader's file name and manifest, as Leptos's `HydrationScripts` expects them.
const SPLIT_LOADER: &str = "./__wasm_split.______________________.js";
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.json";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(input), Some(pkg), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: site-builder <frontend.wasm> <site pkg directory>");
    };
    let wasm = fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    if pkg.exists() {
        fs::remove_dir_all(&pkg).with_context(|| format!("emptying {}", pkg.display()))?;
    }
    fs::create_dir_all(&pkg)?;

    let main_module = input.with_file_name(format!("{OUTPUT_NAME}_split.wasm"));
    let js_module = format!("./{OUTPUT_NAME}.js");
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&wasm);
        options.output_dir = &pkg;
        options.main_out_path = &main_module;
        options.main_module = &js_module;
        options.link_name = SPLIT_LOADER;
        options
    })
    .map_err(|e| anyhow!("splitting {}: {e:?}", input.display()))?;
    fs::write(pkg.join(SPLIT_MANIFEST), serde_json::to_vec(&split.prefetch_map)?)?;
    drop(wasm);

    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&main_module)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .keep_lld_exports(true)
        .demangle(false)
        .generate(&pkg)
        .with_context(|| format!("generating the JavaScript glue for {}", main_module.display()))?;
    // Leptos's hydration script loads `<name>.wasm` when LEPTOS_OUTPUT_NAME is set.
    fs::rename(pkg.join(format!("{OUTPUT_NAME}_bg.wasm")), pkg.join(format!("{OUTPUT_NAME}.wasm")))?;
    Ok(())
}
