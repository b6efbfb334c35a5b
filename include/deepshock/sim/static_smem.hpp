// deepshock/sim/static_smem.hpp — static `__shared__` variables in the simulator: found,
// poisoned before every block, fenced by redzones, and kept per block when blocks interleave.
//
// Under the simulator `__shared__` declares a function-local `static thread_local` variable
// (cuda_shim.hpp), preceded by a 32-byte marker object, SmemRedzone. Nothing at compile time
// lists those variables, so the simulator reads them from the module's ELF symbol table once:
// every thread-local object of a function that declares a marker is a static shared variable
// (its mangled name is `_ZZ<function>E<name>`, the marker's `_ZZ<function>E..deepshock_smem_
// redzone_N`), and so is the object right before a marker (namespace-scope `__shared__`).
// g++ lays a function's thread-local statics out in reverse declaration order, so each
// variable's own marker follows it: the bytes from a variable's end to the next ordinary object
// are its redzone.
//
//  - Before every block the variables are filled with 0xFF bytes (NaN in every float type), as
//    dynamic shared memory is: a read before the first write computes with poison instead of
//    the previous block's (plausible) data.
//  - Under AddressSanitizer the redzones are poisoned (manual poisoning API), so an index past a
//    variable through a pointer is reported as use-after-poison. Without ASan they hold a canary
//    that is checked when a block ends; a changed canary fails the launch naming the variable.
//  - With several resident blocks (engine.hpp) each block keeps its own image of the variables;
//    the engine swaps images when it switches blocks.
// Limits: the module must keep its symbol table (not stripped); only the module whose TLS holds
// `tls_anchor` (the executable, or the shared library that runs the launches) is searched.
#pragma once

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "deepshock/sim/fiber.hpp"

namespace deepshock::sim::detail {

/// What `__shared__` declares before every static shared variable (see the file comment).
struct alignas(16) SmemRedzone {
  unsigned char bytes[32];
};
inline constexpr std::string_view kRedzoneTag = "deepshock_smem_redzone_";

/// Its address, minus its offset in the module's TLS segment, is this thread's TLS block.
inline thread_local unsigned char tls_anchor;
inline constexpr std::string_view kAnchorSymbol = "_ZN9deepshock3sim6detail10tls_anchorE";

struct SmemVar {
  std::size_t offset = 0, size = 0;  ///< in the module's TLS segment
  std::string name;                  ///< demangled
};
struct SmemZone {
  std::size_t offset = 0, size = 0;
  std::size_t var = 0;  ///< the variable it follows
};

/// The module's static shared variables, read once per process.
struct StaticSmem {
  bool found = false;  ///< the symbol table was read
  std::string error;   ///< why not
  std::vector<SmemVar> vars;
  std::vector<SmemZone> zones;
  std::size_t bytes = 0;          ///< sum of the variables' sizes (one block's image)
  std::size_t anchor_offset = 0;  ///< tls_anchor's offset in the TLS segment
  std::size_t unfenced = 0;       ///< variables with no redzone after them
};

inline std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : name;
  std::free(d);
  return s;
}

/// `_ZZ<function>E` of a function-local marker's mangled name, or "" for another marker.
inline std::string_view marker_function_prefix(std::string_view name) {
  const std::size_t tag = name.find(kRedzoneTag);
  if (tag == std::string_view::npos || name.substr(0, 3) != "_ZZ") return {};
  std::size_t p = tag;
  while (p > 0 && name[p - 1] >= '0' && name[p - 1] <= '9') --p;  // the local name's length
  return p > 3 && name[p - 1] == 'E' ? name.substr(0, p) : std::string_view{};
}

/// Reads the thread-local objects of the ELF file at `path` and picks the shared variables.
inline void read_static_smem(const char* path, StaticSmem& out) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out.error = std::string("cannot open ") + path;
    return;
  }
  struct stat st {};
  void* map = ::fstat(fd, &st) == 0 && st.st_size > 0 ? ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                                                      : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED) {
    out.error = std::string("cannot map ") + path;
    return;
  }
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, static_cast<std::size_t>(st.st_size)};
  const auto* base = static_cast<const unsigned char*>(map);
  const std::size_t file_size = static_cast<std::size_t>(st.st_size);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (file_size < sizeof(Elf64_Ehdr) || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shoff == 0 || eh->e_shoff + std::size_t(eh->e_shnum) * sizeof(Elf64_Shdr) > file_size) {
    out.error = std::string(path) + " is not a 64-bit ELF file with section headers";
    return;
  }
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  std::size_t tls_size = 0;
  if (eh->e_phoff && eh->e_phoff + std::size_t(eh->e_phnum) * sizeof(Elf64_Phdr) <= file_size) {
    const auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
    for (unsigned i = 0; i < eh->e_phnum; ++i)
      if (ph[i].p_type == PT_TLS) tls_size = ph[i].p_memsz;
  }
  struct Sym {
    std::size_t offset, size;
    const char* name;
    bool marker;
  };
  std::vector<Sym> syms;
  bool have_symtab = false, have_anchor = false;
  for (unsigned s = 0; s < eh->e_shnum; ++s) {
    if (sh[s].sh_type != SHT_SYMTAB || sh[s].sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr& strtab = sh[sh[s].sh_link];
    if (sh[s].sh_offset + sh[s].sh_size > file_size || strtab.sh_offset + strtab.sh_size > file_size) continue;
    have_symtab = true;
    const auto* sym = reinterpret_cast<const Elf64_Sym*>(base + sh[s].sh_offset);
    const std::size_t n = sh[s].sh_size / sizeof(Elf64_Sym);
    const char* names = reinterpret_cast<const char*>(base + strtab.sh_offset);
    for (std::size_t i = 0; i < n; ++i) {
      if (ELF64_ST_TYPE(sym[i].st_info) != STT_TLS || sym[i].st_shndx == SHN_UNDEF || sym[i].st_name >= strtab.sh_size) continue;
      const char* name = names + sym[i].st_name;
      if (name == kAnchorSymbol) {
        out.anchor_offset = sym[i].st_value;
        have_anchor = true;
      }
      if (sym[i].st_size == 0) continue;
      syms.push_back({sym[i].st_value, sym[i].st_size, name, std::string_view(name).find(kRedzoneTag) != std::string_view::npos});
    }
  }
  if (!have_symtab) {
    out.error = std::string(path) + " has no symbol table (stripped?)";
    return;
  }
  if (!have_anchor) {
    out.error = std::string(path) + " has no symbol " + std::string(kAnchorSymbol);
    return;
  }
  std::sort(syms.begin(), syms.end(), [](const Sym& a, const Sym& b) { return a.offset < b.offset; });
  syms.erase(std::unique(syms.begin(), syms.end(), [](const Sym& a, const Sym& b) { return a.offset == b.offset; }), syms.end());
  std::vector<std::string_view> prefixes;
  for (const Sym& s : syms)
    if (s.marker)
      if (const std::string_view p = marker_function_prefix(s.name); !p.empty()) prefixes.push_back(p);
  std::sort(prefixes.begin(), prefixes.end());
  prefixes.erase(std::unique(prefixes.begin(), prefixes.end()), prefixes.end());
  for (std::size_t i = 0; i < syms.size(); ++i) {
    const Sym& s = syms[i];
    if (s.marker) continue;
    const std::string_view name(s.name);
    bool shared = i + 1 < syms.size() && syms[i + 1].marker && s.offset + s.size <= syms[i + 1].offset;
    if (!shared && name.substr(0, 3) == "_ZZ") {
      auto it = std::upper_bound(prefixes.begin(), prefixes.end(), name);  // the prefix sorts before the name
      shared = it != prefixes.begin() && name.substr(0, (it - 1)->size()) == *(it - 1);
    }
    if (!shared) continue;
    // Its redzone: up to the next object that is not a marker (or the segment's end).
    std::size_t limit = tls_size;
    for (std::size_t j = i + 1; j < syms.size(); ++j)
      if (!syms[j].marker) {
        limit = syms[j].offset;
        break;
      }
    const std::size_t end = s.offset + s.size;
    out.vars.push_back({s.offset, s.size, demangle(s.name)});
    out.bytes += s.size;
    if (limit > end) out.zones.push_back({end, limit - end, out.vars.size() - 1});
    else ++out.unfenced;
  }
  out.found = true;
}

/// The path of the module whose TLS block holds `tls_anchor` ("/proc/self/exe" for the executable).
inline std::string anchor_module_path() {
  struct Search {
    const unsigned char* anchor;
    std::string path;
  } search{&tls_anchor, {}};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* p) -> int {
        auto* s = static_cast<Search*>(p);
        const auto* tls = static_cast<const unsigned char*>(info->dlpi_tls_data);
        if (!tls) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i)
          if (info->dlpi_phdr[i].p_type == PT_TLS && s->anchor >= tls && s->anchor < tls + info->dlpi_phdr[i].p_memsz) {
            s->path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
            return 1;
          }
        return 0;
      },
      &search);
  return search.path.empty() ? std::string("/proc/self/exe") : search.path;
}

inline const StaticSmem& static_smem() {
  static StaticSmem s;
  static std::once_flag once;
  std::call_once(once, [] { read_static_smem(anchor_module_path().c_str(), s); });
  return s;
}

/// This OS thread's copy of the module's TLS segment.
inline unsigned char* smem_tls_base() { return &tls_anchor - static_smem().anchor_offset; }

inline unsigned char canary_byte(std::size_t i) { return static_cast<unsigned char>(0xA5u + 7u * i); }

/// Once per OS thread: poison the redzones (ASan) or fill them with the canary.
inline void arm_static_smem_redzones() {
  static thread_local bool armed = false;
  if (armed) return;
  armed = true;
  const StaticSmem& s = static_smem();
  unsigned char* base = smem_tls_base();
  for (const SmemZone& z : s.zones) {
#if DEEPSHOCK_SIM_ASAN
    __asan_poison_memory_region(base + z.offset, z.size);
#else
    for (std::size_t i = 0; i < z.size; ++i) base[z.offset + i] = canary_byte(i);
#endif
  }
}

/// Fills every static shared variable of this OS thread with 0xFF bytes.
inline void poison_static_smem() {
  const StaticSmem& s = static_smem();
  unsigned char* base = smem_tls_base();
  for (const SmemVar& v : s.vars) std::memset(base + v.offset, 0xFF, v.size);
}

/// Copies the variables into `image` (static_smem().bytes bytes), or back from it.
inline void save_static_smem(unsigned char* image) {
  const unsigned char* base = smem_tls_base();
  for (const SmemVar& v : static_smem().vars) {
    std::memcpy(image, base + v.offset, v.size);
    image += v.size;
  }
}
inline void load_static_smem(const unsigned char* image) {
  unsigned char* base = smem_tls_base();
  for (const SmemVar& v : static_smem().vars) {
    std::memcpy(base + v.offset, image, v.size);
    image += v.size;
  }
}

/// Without ASan: "" when every canary is intact, else which variable was overrun (the canaries
/// are restored). Under ASan the poisoned redzones report the access itself.
inline std::string check_static_smem_redzones() {
#if DEEPSHOCK_SIM_ASAN
  return {};
#else
  const StaticSmem& s = static_smem();
  unsigned char* base = smem_tls_base();
  std::string what;
  for (const SmemZone& z : s.zones)
    for (std::size_t i = 0; i < z.size; ++i)
      if (base[z.offset + i] != canary_byte(i)) {
        if (what.empty())
          what = "out-of-bounds write to static shared memory: byte " + std::to_string(i) + " past the end of __shared__ '" +
                 s.vars[z.var].name + "' (" + std::to_string(s.vars[z.var].size) + " bytes) changed";
        base[z.offset + i] = canary_byte(i);
      }
  return what;
#endif
}

}  // namespace deepshock::sim::detail
