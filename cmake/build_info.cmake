# Regenerates build_info.h at every build (the git revision changes without a reconfigure), writing the
# file only when its content changes so that nothing recompiles needlessly.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE VARBENCH_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE VARBENCH_GIT_DIRTY OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT VARBENCH_GIT_REVISION)
  set(VARBENCH_GIT_REVISION "unknown")
elseif(VARBENCH_GIT_DIRTY)
  set(VARBENCH_GIT_REVISION "${VARBENCH_GIT_REVISION}-dirty")
endif()
configure_file(${SOURCE_DIR}/harness/platform/build_info.h.in ${OUTPUT}.tmp @ONLY)
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
