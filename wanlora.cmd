@echo off
rem Runs the wanlora CLI on Windows. Builds the jars on first use if they are missing.
setlocal
set "ROOT=%~dp0"
set "JAVA=java"
if defined JAVA_HOME set "JAVA=%JAVA_HOME%\bin\java"
if not exist "%ROOT%cli\target\wanlora-cli.jar" (
  echo wanlora: building the jars once ^(mvn -DskipTests package^)... 1>&2
  pushd "%ROOT%" && call mvn -B -q -DskipTests package && popd
)
"%JAVA%" --enable-native-access=ALL-UNNAMED %WANLORA_JAVA_OPTS% -cp "%ROOT%cli\target\wanlora-cli.jar;%ROOT%cli\target\lib\*" dev.wanlora.cli.Main %*
