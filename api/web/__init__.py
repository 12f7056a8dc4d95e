"""The web pages: the expert's and the signer's phone pages under /m/."""
