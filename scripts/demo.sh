#!/usr/bin/env bash
# The demo: the bundled iris project, as a git repository of its own, run end to end.
# Run twice, the second run is cached: nothing retrains, the endpoint keeps serving.
set -euo pipefail
cd "$(dirname "$0")/.."
MLCICD=.venv/bin/mlcicd
DEMO=.demo/iris

# A copy of examples/iris under .demo/ (ignored by git), committed in a repository of its own.
mkdir -p "$DEMO"
if [ ! -d "$DEMO/.git" ]; then
  git init --quiet --initial-branch=main "$DEMO"
fi
# Sync the example in (without its state directory), then commit whatever changed.
tar -C examples/iris --exclude=.mlcicd --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$DEMO" -xf -
git -C "$DEMO" add -A
if ! git -C "$DEMO" diff --cached --quiet; then
  git -C "$DEMO" -c user.name="mlcicd demo" -c user.email="demo@localhost" \
    commit --quiet -m "iris classifier: sync from examples/iris"
fi

"$MLCICD" run "$DEMO"

echo
echo "The endpoint keeps serving after this command. Try:"
echo "  $MLCICD -C $DEMO invoke iris-classifier-endpoint --body '[[5.1,3.5,1.4,0.2]]'"
echo "  $MLCICD -C $DEMO endpoints list"
echo "  $MLCICD -C $DEMO runs list"
echo "  $MLCICD -C $DEMO models list"
echo "  make clean   # stops the endpoint and removes .demo/"
echo
echo "\$ mlcicd invoke iris-classifier-endpoint --body '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]'"
"$MLCICD" -C "$DEMO" invoke iris-classifier-endpoint --body '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]'
