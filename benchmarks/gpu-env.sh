# Sourced by the device scripts (gpu-check.sh, gpu-train.sh): unpacks the carried archives, finds
# the CUDA / cuDNN libraries once, and defines `stage SECONDS CMD…`, which runs CMD with a timeout
# that never passes the script's $BUDGET (so one device call always returns its results).

# The device tool carries gpu-bundle.tar.xz (stripped, xz: ~20 MB) rather than gpu-bundle/ (~175 MB).
unpack() { # unpack ARCHIVE DIR
  mkdir -p "$2" && (tar -C "$2" -xJf "$1" 2>/dev/null || python3 -c \
    "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$1" "$2")
}
if [ ! -x gpu-bundle/run.sh ] && [ -f gpu-bundle.tar.xz ]; then
  unpack gpu-bundle.tar.xz gpu-bundle && chmod +x gpu-bundle/*
fi
B=gpu-bundle/run.sh
PY=$(ls /opt/torch/.venv/bin/python 2>/dev/null || command -v python3)

# One search of the file system for the libraries instead of one per binary started.
if [ -z "${DGL_CUDA_LIBS:-}" ]; then
  DGL_CUDA_LIBS=$(dirname "$(find / -name 'libcublas.so.13' -not -path '*/stubs/*' 2>/dev/null | head -1)")
  export DGL_CUDA_LIBS
fi
if [ -z "${DGL_CUDNN_LIBS:-}" ]; then
  DGL_CUDNN_LIBS=$(dirname "$(find / -name 'libcudnn.so.9' 2>/dev/null | head -1)" 2>/dev/null || true)
  export DGL_CUDNN_LIBS
fi

stage() { # stage SECONDS CMD...: at most SECONDS, and never past the budget
  local want=$1; shift
  local left=$((BUDGET - SECONDS - 5))
  if [ "$left" -lt 10 ]; then echo "SKIPPED (budget spent): $*"; return 0; fi
  [ "$want" -gt "$left" ] && want=$left
  timeout "$want" "$@"
  local rc=$?
  [ $rc -eq 124 ] && echo "TIMED OUT after ${want}s: $*"
  return $rc
}
