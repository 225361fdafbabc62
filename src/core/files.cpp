#include "core/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/errors.h"

namespace sy {

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
    if (!out.flush())
      throw Error(ExitCode::bad_input, "cannot write '" + tmp + "' (disk full or read-only?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(ExitCode::bad_input, "cannot write '" + path + "': " + std::strerror(errno));
}

}  // namespace sy
