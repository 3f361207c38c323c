/* synccache version macros. CMake reads the three numbers below; keep
 * their "#define SC_VERSION_* N" form. */
#ifndef SYNCCACHE_VERSION_H
#define SYNCCACHE_VERSION_H

#define SC_VERSION_MAJOR 0
#define SC_VERSION_MINOR 1
#define SC_VERSION_PATCH 0

#define SC_VERSION_STRING "0.1.0"
/* One number that grows with every release: 0xMMmmpp. */
#define SC_VERSION_NUM ((SC_VERSION_MAJOR << 16) | (SC_VERSION_MINOR << 8) | SC_VERSION_PATCH)

#endif
