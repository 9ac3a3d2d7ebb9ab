#include <unistd.h>

#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  qabox::cli::RunOptions options;
  options.stdoutIsTerminal = isatty(STDOUT_FILENO) == 1;
  options.stderrIsTerminal = isatty(STDERR_FILENO) == 1;
  options.in = &std::cin;
  return qabox::cli::runCli(argc, argv, std::cout, std::cerr, options);
}
