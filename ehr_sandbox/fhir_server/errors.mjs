// An error that the HTTP adapter turns into a status code, an OperationOutcome and headers.
export class HttpError extends Error {
  constructor(status, code, text, headers = {}) {
    super(text);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}
