# Sourced by the packaging tests. help_default_is BIN DIR: BIN's --help shows
# DIR as --web-root's default. --help wraps long paths, so blanks and line
# breaks are dropped first; cxxopts drops the closing parenthesis when a path
# ends exactly at the wrap width, so the next option's "--" also ends it.
help_default_is() {
  local help
  help=$("$1" --help | tr -d ' \n')
  grep -qF -- "(default:$2)" <<<"$help" || grep -qF -- "(default:$2--client-root" <<<"$help"
}
