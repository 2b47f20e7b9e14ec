/**
 * Bad flags or arguments: cli.ts prints the message with the usage, exit 1. Its own
 * module, so cli.ts can recognise a command's usage error (`lookout cost`'s) without
 * loading that command's code for every other command.
 */
export class UsageError extends Error {}
