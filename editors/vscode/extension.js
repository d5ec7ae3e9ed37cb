// Starts `lthc lsp` for .lth files: everything the editor shows comes from the language server.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("lthc").get("path") || "lthc";
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "lthc",
    "lthc",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "lth" }, { scheme: "untitled", language: "lth" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
