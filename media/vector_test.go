package media

// securityCodeVector is SecurityCode("sha-256 "+fpOf(1), "sha-256 "+fpOf(100)),
// computed independently (Python hashlib).
const securityCodeVector = "667881"
