export class Authorizer {}
