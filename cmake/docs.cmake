# docs.cmake - writes the man page and the shell completions that the gen
# just built prints from its option tables (gen --manual, gen --completion)
# into OUT: gen.1, gen.bash and _gen (zsh). Run by the build:
#   cmake -DGEN=path/to/gen -DOUT=dir -P cmake/docs.cmake
foreach(job "gen.1;--manual" "gen.bash;--completion;bash" "_gen;--completion;zsh")
  list(POP_FRONT job file)
  execute_process(COMMAND "${GEN}" ${job} OUTPUT_FILE "${OUT}/${file}.tmp" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${GEN} ${job}: exit ${rc}")
  endif()
  file(RENAME "${OUT}/${file}.tmp" "${OUT}/${file}")
endforeach()
