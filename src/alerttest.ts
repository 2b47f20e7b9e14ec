// PLACEHOLDER — being written.
export async function alertTest(_opts: {
  alertmanager?: string;
  severity?: string;
}): Promise<number> {
  return 2;
}
