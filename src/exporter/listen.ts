/** Splits ":10142", "127.0.0.1:10142" or "[::1]:10142"; an empty host means every address. */
export function splitListenAddress(address: string): { host: string | undefined; port: number } {
  const i = address.lastIndexOf(':');
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? undefined : host, port: Number(address.slice(i + 1)) };
}
