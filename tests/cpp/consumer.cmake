# A downstream project's view of pygenmod (run by ctest, see CMakeLists.txt):
#   MODE=find_package:     configure the repository with PYGENMOD_PYTHON=OFF, install it to
#                          WORK/prefix, then build examples/cpp and tests/cpp/consumer against
#                          that prefix with find_package(pygenmod CONFIG REQUIRED) and run them;
#   MODE=add_subdirectory: build tests/cpp/consumer with add_subdirectory(<repo>) and run it.
# cmake -DREPO=... -DWORK=... -DMODE=... -DGENERATOR=... [-DCXX=... -DCC=...] -P consumer.cmake
cmake_minimum_required(VERSION 3.24)
foreach(v REPO WORK MODE GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "consumer.cmake: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
set(compilers)
if(CXX)
  list(APPEND compilers -DCMAKE_CXX_COMPILER=${CXX})
endif()
if(CC)
  list(APPEND compilers -DCMAKE_C_COMPILER=${CC})
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "consumer.cmake: failed (${rc}): ${cmd}")
  endif()
endfunction()

# configure + build project SRC in BIN with extra -D arguments, then run the listed programs
function(build_and_run src bin)
  cmake_parse_arguments(A "" "" "DEFS;RUN" ${ARGN})
  run(${CMAKE_COMMAND} -S ${src} -B ${bin} -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release ${compilers} ${A_DEFS})
  run(${CMAKE_COMMAND} --build ${bin})
  foreach(exe IN LISTS A_RUN)
    message(STATUS "running ${exe}")
    run(${bin}/${exe})
  endforeach()
endfunction()

if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${REPO} -B ${WORK}/pkg -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release ${compilers}
      -DPYGENMOD_PYTHON=OFF -DPYGENMOD_CUDA=OFF)
  run(${CMAKE_COMMAND} --build ${WORK}/pkg)
  run(${CMAKE_COMMAND} --install ${WORK}/pkg --prefix ${WORK}/prefix)
  foreach(f include/pygenmod/mdp.hpp include/pygenmod_c.h share/cmake/pygenmod/pygenmodConfig.cmake
            share/cmake/pygenmod/pygenmodConfigVersion.cmake)
    if(NOT EXISTS ${WORK}/prefix/${f})
      message(FATAL_ERROR "consumer.cmake: ${f} was not installed")
    endif()
  endforeach()
  build_and_run(${REPO}/tests/cpp/consumer ${WORK}/consumer DEFS -DCMAKE_PREFIX_PATH=${WORK}/prefix
                RUN consumer consumer_c)
  build_and_run(${REPO}/examples/cpp ${WORK}/examples DEFS -DCMAKE_PREFIX_PATH=${WORK}/prefix
                RUN value_iteration mcts_tabular gmm_fit)
elseif(MODE STREQUAL "add_subdirectory")
  build_and_run(${REPO}/tests/cpp/consumer ${WORK}/consumer DEFS -DPYGENMOD_SOURCE_DIR=${REPO}
                RUN consumer consumer_c)
else()
  message(FATAL_ERROR "consumer.cmake: MODE must be find_package or add_subdirectory")
endif()
