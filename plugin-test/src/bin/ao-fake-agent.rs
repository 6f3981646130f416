//! The fake agent as a program: see `ao_plugin_test::fake_agent`.

fn main() {
    std::process::exit(ao_plugin_test::fake_agent::run(std::env::args_os()));
}
