/** The stub_status parser on literal pages (the collector on a real nginx: nginx.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStubStatus, StubStatusParseError } from '../src/lib/stubstatus.js';

const PAGE = `Active connections: 291 
server accepts handled requests
 16630948 16630947 31070465 
Reading: 6 Writing: 179 Waiting: 106 
`;

describe('parseStubStatus', () => {
  it('reads every field of the page', () => {
    assert.deepEqual(parseStubStatus(PAGE), {
      active: 291,
      accepted: 16630948,
      handled: 16630947,
      requests: 31070465,
      reading: 6,
      writing: 179,
      waiting: 106,
    });
  });

  it('takes CRLF line ends', () => {
    assert.equal(parseStubStatus(PAGE.replaceAll('\n', '\r\n')).requests, 31070465);
  });

  it('rejects anything else, saying how it starts', () => {
    for (const text of ['', '<html><body>Welcome to nginx!</body></html>', PAGE.slice(0, 60)]) {
      assert.throws(() => parseStubStatus(text), StubStatusParseError, JSON.stringify(text));
    }
    assert.throws(
      () => parseStubStatus('<html>'),
      /not an nginx stub_status page \(starts "<html>"\)/,
    );
  });
});
