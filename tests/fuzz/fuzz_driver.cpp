// Runs a fuzz entry point without libFuzzer, so it runs under ctest with any
// compiler: every corpus file, then mutations of them from a fixed seed for
// a bounded number of iterations.
//
//   fuzz_driver [--iterations N] [--seed S] CORPUS_DIR_OR_FILE...

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

std::string readFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Tokens the HTTP parser cares about, so random edits reach its corners.
const std::vector<std::string> kTokens = {"\r\n",
                                          "\n",
                                          "\r",
                                          " ",
                                          "\t",
                                          ":",
                                          ",",
                                          "\r\n\r\n",
                                          std::string(1, '\0'),
                                          "0\r\n\r\n",
                                          "chunked",
                                          "HTTP/1.1",
                                          "HTTP/1.0",
                                          "Host: a.qa.company.int\r\n",
                                          "Content-Length: 5\r\n",
                                          "Transfer-Encoding: chunked\r\n",
                                          "Connection: Upgrade\r\nUpgrade: websocket\r\n",
                                          "Expect: 100-continue\r\n",
                                          "\r\n ",
                                          "ffffffffffffffff\r\n",
                                          ";ext=\"x\"",
                                          "GET http://b.qa.company.int/ HTTP/1.1\r\n"};

std::string mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  int edits = 1 + static_cast<int>(rng() % 8);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 7) {
      case 0:
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1: s.insert(pick(s.size() + 1), 1, static_cast<char>(rng())); break;
      case 2: s.insert(pick(s.size() + 1), kTokens[pick(kTokens.size())]); break;
      case 3:
        if (!s.empty()) {
          size_t at = pick(s.size());
          s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
        }
        break;
      case 4:
        if (!s.empty()) {
          size_t at = pick(s.size());
          size_t len = 1 + pick(std::min<size_t>(64, s.size() - at));
          s.insert(pick(s.size() + 1), s.substr(at, len));
        }
        break;
      case 5:
        if (!corpus.empty()) {
          const std::string& other = corpus[pick(corpus.size())];
          s = s.substr(0, pick(s.size() + 1)) + other.substr(pick(other.size() + 1));
        }
        break;
      case 6:
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
    }
  }
  if (s.size() > 64 * 1024) s.resize(64 * 1024);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 10000;
  unsigned long long seed = 1;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--iterations" && i + 1 < argc) {
      iterations = std::atol(argv[++i]);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) corpus.push_back(readFile(f));
    } else if (std::filesystem::is_regular_file(arg)) {
      corpus.push_back(readFile(arg));
    } else {
      std::fprintf(stderr, "fuzz_driver: %s: no such file or directory\n", arg.c_str());
      return 2;
    }
  }
  run("");
  for (const auto& c : corpus) run(c);
  std::mt19937_64 rng(seed);
  for (long i = 0; i < iterations; ++i) {
    std::string base = corpus.empty() ? std::string() : corpus[rng() % corpus.size()];
    run(mutate(std::move(base), corpus, rng));
  }
  std::printf("fuzz_driver: %zu corpus inputs and %ld mutations ran clean (seed %llu)\n",
              corpus.size(), iterations, seed);
  return 0;
}
