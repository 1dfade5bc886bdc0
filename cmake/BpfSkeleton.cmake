# Builds BPF C with clang -target bpf against a vmlinux.h generated from the running kernel's
# BTF, and generates a libbpf skeleton header with bpftool. One function for every object.

find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
set(MESHLANE_VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "Kernel BTF used to generate vmlinux.h")
set(MESHLANE_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)
file(MAKE_DIRECTORY ${MESHLANE_BPF_GEN_DIR})

if(NOT EXISTS ${MESHLANE_VMLINUX_BTF})
  message(FATAL_ERROR "${MESHLANE_VMLINUX_BTF} not found: meshlane needs a kernel built with "
                      "CONFIG_DEBUG_INFO_BTF=y (kernel >= 5.15)")
endif()

add_custom_command(
  OUTPUT ${MESHLANE_BPF_GEN_DIR}/vmlinux.h
  COMMAND ${BPFTOOL} btf dump file ${MESHLANE_VMLINUX_BTF} format c > ${MESHLANE_BPF_GEN_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${MESHLANE_VMLINUX_BTF}"
  VERBATIM)
add_custom_target(meshlane_vmlinux_h DEPENDS ${MESHLANE_BPF_GEN_DIR}/vmlinux.h)

string(TOLOWER ${CMAKE_SYSTEM_PROCESSOR} _arch)
if(_arch MATCHES "x86_64|amd64")
  set(MESHLANE_BPF_ARCH x86)
elseif(_arch MATCHES "aarch64|arm64")
  set(MESHLANE_BPF_ARCH arm64)
else()
  set(MESHLANE_BPF_ARCH ${_arch})
endif()

# All generated skeleton headers are reachable through this interface target.
add_library(meshlane_skeletons INTERFACE)
target_include_directories(meshlane_skeletons INTERFACE ${MESHLANE_BPF_GEN_DIR})

function(meshlane_bpf_skeleton name source)
  set(obj ${MESHLANE_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${MESHLANE_BPF_GEN_DIR}/${name}.skel.h)
  file(GLOB_RECURSE _bpf_headers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bpf/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${MESHLANE_BPF_ARCH}
            -Wall -Werror -Wno-unused-function
            -I${MESHLANE_BPF_GEN_DIR} -I${CMAKE_SOURCE_DIR}/bpf/include
            -c ${source} -o ${obj}
    DEPENDS ${source} ${_bpf_headers} ${MESHLANE_BPF_GEN_DIR}/vmlinux.h
    COMMENT "Compiling BPF object ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "Generating BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel DEPENDS ${skel})
  add_dependencies(meshlane_skeletons ${name}_skel)
endfunction()
